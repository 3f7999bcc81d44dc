"""The Delta lakehouse: raw, clean and serving tables, keys, partitions, writes, names by layer."""
