"""The IDX container format (MNIST's), and gzip decompression that stops at a size limit.

Design: pure Python + NumPy (no kernels). An IDX header says exactly how many bytes the
content has, so a ``.gz`` is decompressed chunk by chunk and abandoned as soon as it
yields more than that: a small file that inflates to gigabytes (a "gzip bomb") costs one
chunk of memory beyond the expected size, never its full size.
"""
import io
import os
import zlib

import numpy as np

__all__ = ["read_idx", "IDXFormatError"]

_IDX_DTYPES = {  # IDX type byte -> big-endian dtype
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
_CHUNK = 1 << 16
_HEADER_MAX = 4 + 4 * 255  # magic + up to 255 big-endian uint32 sizes
GZIP_MAGIC = b"\x1f\x8b"


class IDXFormatError(ValueError):
    """A file is not a well-formed IDX file (bad magic number, sizes or length)."""


def _parse_header(data, name):
    """(dtype, shape, header length, total length) from the first bytes of IDX data, or
    None when ``data`` is too short to tell yet; IDXFormatError when it is not IDX."""
    if len(data) < 4:
        return None
    # header: 0x00 0x00 <type> <ndim>, then ndim big-endian uint32 sizes
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES or data[3] == 0:
        raise IDXFormatError(
            "%s: not an IDX file (magic number 0x%s; MNIST images have 0x00000803 = 2051, "
            "labels 0x00000801 = 2049)" % (name, bytes(data[:4]).hex()))
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        return None
    shape = tuple(int(s) for s in np.frombuffer(bytes(data[4:header]), ">u4"))
    total = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return dtype, shape, header, total


def gunzip_bounded(source, name, max_size=None):
    """Decompress gzip data (bytes or a binary file object) chunk by chunk.

    Parameters
    ----------
    source : bytes-like or binary file object
    name : str
        Used in error messages.
    max_size : int or None
        Stop with IDXFormatError as soon as the output exceeds this many bytes. None: the
        limit is the length that the content's own IDX header declares.

    Returns
    -------
    bytes
        The decompressed content (every gzip member, concatenated, as ``gzip.decompress``).
    """
    read = io.BytesIO(source).read if isinstance(source, (bytes, bytearray, memoryview)) \
        else source.read
    out = bytearray()
    limit = max_size if max_size is not None else _HEADER_MAX
    known = max_size is not None
    d = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer (CRC and size checked)
    in_member, members = False, 0
    try:
        while True:
            data = read(_CHUNK)
            if not data:
                break
            while data:
                in_member = True
                out += d.decompress(data, limit - len(out) + 1)  # one byte over tells
                if not known:
                    head = _parse_header(out, name)
                    if head is not None:
                        limit, known = head[3], True
                if len(out) > limit:
                    raise IDXFormatError(
                        "%s: decompresses to more than %d bytes, the %s: a corrupted or "
                        "different file (or a gzip bomb)"
                        % (name, limit, "expected size" if max_size is not None
                           else "size its IDX header declares"))
                if d.eof:  # the end of one gzip member; another may follow
                    in_member, members = False, members + 1
                    data = d.unused_data
                    d = zlib.decompressobj(wbits=31)
                    if not data.strip(b"\0"):  # zero padding after the last member
                        data = b""
                else:
                    data = d.unconsumed_tail
    except zlib.error as e:
        raise IDXFormatError("%s: not a complete gzip file (%s)" % (name, e)) from None
    if in_member or not members:
        raise IDXFormatError("%s: not a complete gzip file (%s)"
                             % (name, "it ends too early" if in_member else "empty"))
    return bytes(out)


def read_idx(source, name="IDX data"):
    """Parse an IDX file (the MNIST container format) into a read-only NumPy array.

    Parameters
    ----------
    source : bytes, str or path-like
        The decompressed IDX bytes, or a path (gzip files, e.g. ``.gz``, are decompressed,
        never beyond the size their header declares).
    name : str
        Used in error messages.

    Returns
    -------
    ndarray, read-only
        Shape from the header (images: ``(N, 28, 28)``, labels: ``(N,)``), dtype from the
        type byte (MNIST: uint8). Multi-byte types are converted to native byte order.

    Raises
    ------
    IDXFormatError
        Bad magic number, unknown type, zero dimensions, or a length that does not match
        the header (truncated or padded file).
    """
    if isinstance(source, (str, os.PathLike)):
        data, name = _read_file(source)
    else:
        data = bytes(source) if not isinstance(source, (bytes, memoryview)) else source
    if len(data) < 4:
        raise IDXFormatError("%s: %d bytes, too short for an IDX header" % (name, len(data)))
    head = _parse_header(data, name)
    if head is None:
        raise IDXFormatError("%s: truncated header (%d bytes, need %d for %d dimensions)"
                             % (name, len(data), 4 + 4 * data[3], data[3]))
    dtype, shape, header, expected = head
    if len(data) != expected:
        raise IDXFormatError(
            "%s: header says shape %s of %s (%d bytes in all) but the file has %d bytes (%s)"
            % (name, shape, dtype.name, expected, len(data),
               "truncated" if len(data) < expected else "trailing data"))
    arr = np.frombuffer(data, dtype, offset=header).reshape(shape)
    if not dtype.isnative and dtype.itemsize > 1:
        arr = arr.astype(dtype.newbyteorder("="))
    arr.flags.writeable = False
    return arr


def _read_file(path):
    """(content, name) of an IDX file on disk: gzip files are decompressed up to the size
    their header declares; a plain file is read only when its size matches its header."""
    name = os.fsdecode(path)
    with open(path, "rb") as f:
        if f.read(2) == GZIP_MAGIC:
            f.seek(0)
            return gunzip_bounded(f, name), name
        f.seek(0)
        prefix = f.read(_HEADER_MAX)
        head = _parse_header(prefix, name) if len(prefix) >= 4 else None
        size = os.fstat(f.fileno()).st_size
        if head is not None and size > head[3]:
            dtype, shape, _, expected = head
            raise IDXFormatError(
                "%s: header says shape %s of %s (%d bytes in all) but the file has %d bytes "
                "(trailing data)" % (name, shape, dtype.name, expected, size))
        return prefix + f.read(), name
