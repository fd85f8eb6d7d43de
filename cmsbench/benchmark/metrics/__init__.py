"""Metrics. Submodules (import what you use; torch is imported only by the SSIM engine):

- :mod:`.pixel`: MAE, MSE, NMSE, NRMSE, PSNR (numpy, float64)
- :mod:`.ssim`: SSIM maps and means (:class:`~.ssim.SSIMConfig`, Gaussian default, uniform-7 option)
- :mod:`.msssim`: masked MS-SSIM (textbook and SynthRAD2025 variants)
- :mod:`.fused`: one pass computing the SSIM map once and every region's sums
- :mod:`.regions`: region definitions, empty-mask policy, lesion components
- :mod:`.clinical`: PET SUV errors, CT display windows
- :mod:`.lpips`: optional LPIPS
"""
