"""GDCAS, the data-center automation system: change catalog and SSH executors for managed hosts."""
