"""Landing zone writer: Parquet batches + manifest + watermark state in S3, every put SSE-KMS."""
