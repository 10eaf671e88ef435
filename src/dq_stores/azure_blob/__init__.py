"""Azure Blob Storage adapters: the document backend and the results store.

Importing this package imports the Azure SDK; ``dq_stores`` itself never does.
"""

from dq_stores.azure_blob._client import ClientSettings
from dq_stores.azure_blob.backend import AzureBlobBackend
from dq_stores.azure_blob.results import AzureBlobResultsStore

__all__ = ["AzureBlobBackend", "AzureBlobResultsStore", "ClientSettings"]
