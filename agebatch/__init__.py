"""agebatch: checkout photos to age analytics, as a nightly batch job."""

__version__ = "0.1.0"
