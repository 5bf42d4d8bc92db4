"""Reading a day's inputs: photos and their capture metadata, transactions, catalog, regions."""
