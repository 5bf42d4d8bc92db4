"""The Prefect flow and its deployment, shipped inside the package as ``agebatch.flows``."""
