"""oci2bin: turn an OCI/Docker image into one self-running executable file."""

__version__ = "0.1.0"
