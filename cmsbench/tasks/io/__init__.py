"""Readers and writers for the file formats datasets are distributed in (NIfTI, DICOM) and the cache."""
