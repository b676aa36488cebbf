"""A write-only file object that streams into one S3 object by multipart upload, every part under the KMS key.

Memory stays at a few parts (PART_BYTES) whatever the file size; parts upload on a background thread so encoding
and uploading overlap; `abort()` removes the parts of a failed file, so a crash never leaves a half-written object
under the raw prefix (Snowpipe only sees completed objects).
"""

from __future__ import annotations

import io
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

PART_BYTES = 8 * 1024 * 1024  # S3's minimum part is 5 MiB (except the last)
PARTS_IN_FLIGHT = 2  # parts buffered while uploading: bounds memory


class S3MultipartSink(io.RawIOBase):
    def __init__(self, s3: Any, bucket: str, key: str, kms_key_id: str) -> None:
        super().__init__()
        self._s3, self.bucket, self.key, self._kms = s3, bucket, key, kms_key_id
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s3-part")
        self._pending: list[Future[None]] = []
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
        """Queue one part; waits while PARTS_IN_FLIGHT are still uploading (and surfaces their errors)."""
        if self._upload_id is None:
            self._upload_id = self._s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ServerSideEncryption="aws:kms", SSEKMSKeyId=self._kms
            )["UploadId"]
        number = len(self._parts) + 1
        part: dict[str, Any] = {"PartNumber": number}
        self._parts.append(part)
        while len(self._pending) >= PARTS_IN_FLIGHT:
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(self._send, part, body))

    def _send(self, part: dict[str, Any], body: bytes) -> None:
        part["ETag"] = self._s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=part["PartNumber"], Body=body
        )["ETag"]

    def _drain(self) -> None:
        while self._pending:
            self._pending.pop(0).result()

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
            self._drain()
            self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
            )
        self._buffer.clear()
        self._pool.shutdown()
        self.completed = True
        super().close()

    def abort(self) -> None:
        """Drop whatever was uploaded of this object: nothing half-written stays behind."""
        for pending in self._pending:
            pending.cancel()
        self._pool.shutdown(wait=True)
        if self._upload_id is not None:
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
        self._buffer.clear()
        super().close()
