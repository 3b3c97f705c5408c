"""The statistics: drift, data quality, calibration, performance, operations."""
