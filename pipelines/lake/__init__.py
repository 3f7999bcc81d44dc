"""The Delta Lake lakehouse: raw, clean and serving tables, their keys, partitions and writes."""
