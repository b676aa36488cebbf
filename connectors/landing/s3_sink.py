"""A write-only file object that streams into one S3 object by multipart upload, every part under the KMS key.

Memory stays at one part (PART_BYTES) whatever the file size; `abort()` removes the parts of a failed file, so a
crash never leaves a half-written object under the raw prefix (Snowpipe only sees completed objects).
"""

from __future__ import annotations

import io
from typing import Any

PART_BYTES = 8 * 1024 * 1024  # S3's minimum part is 5 MiB (except the last)


class S3MultipartSink(io.RawIOBase):
    def __init__(self, s3: Any, bucket: str, key: str, kms_key_id: str) -> None:
        super().__init__()
        self._s3, self.bucket, self.key, self._kms = s3, bucket, key, kms_key_id
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str | None = None
        self.bytes_written = 0
        self.completed = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._buffer += view
        self.bytes_written += len(view)
        if len(self._buffer) >= PART_BYTES:
            self._upload_part(bytes(self._buffer))
            self._buffer.clear()
        return len(view)

    def _upload_part(self, body: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = self._s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ServerSideEncryption="aws:kms", SSEKMSKeyId=self._kms
            )["UploadId"]
        number = len(self._parts) + 1
        etag = self._s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=body
        )["ETag"]
        self._parts.append({"PartNumber": number, "ETag": etag})

    def close(self) -> None:
        """Complete the object (a small file is one plain put, still under the KMS key)."""
        if self.closed:
            return
        if self._upload_id is None:
            self._s3.put_object(
                Bucket=self.bucket,
                Key=self.key,
                Body=bytes(self._buffer),
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=self._kms,
            )
        else:
            if self._buffer:
                self._upload_part(bytes(self._buffer))
            self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
            )
        self._buffer.clear()
        self.completed = True
        super().close()

    def abort(self) -> None:
        """Drop whatever was uploaded of this object: nothing half-written stays behind."""
        if self._upload_id is not None:
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
        self._buffer.clear()
        super().close()
