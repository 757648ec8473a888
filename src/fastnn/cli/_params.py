"""``fastnn train --save`` / ``--load``: a net's params in an ``.npz`` file, with a JSON
description of the net (``__fastnn__``).

Writing is atomic (a temporary file in the same folder, renamed into place once complete),
so an interrupted save never leaves half a file. Reading trusts nothing: no pickles, and
every way a file can be wrong (empty, not an .npz, no description, a missing parameter,
a wrong shape) is a one-line UsageError naming ``--load``.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

from ._common import UsageError

__all__ = ["save_params", "load_params", "check_params"]

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip file (an .npz), or an empty one


def save_params(path, params, meta):
    """Write ``params`` (dict of arrays) and ``meta`` (JSON-able) to ``path``, atomically."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastnn-", suffix=".npz.part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, __fastnn__=np.array(json.dumps(meta)),
                     **{k: np.asarray(v) for k, v in params.items()})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # the old file stays whole until the new one is complete
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load_params(path, option="--load"):
    """(params dict, meta dict) from a file written by ``fastnn train --save``.

    Raises UsageError (one line, naming ``option`` and the file) for anything else.
    """
    path = os.fspath(path)

    def bad(why):
        return UsageError("%s %s: %s" % (option, path, why))

    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise bad(e.strerror or str(e)) from None
    if not head:
        raise bad("the file is empty (not a file written by fastnn train --save)")
    if head not in _ZIP_MAGIC:
        raise bad("not an .npz file (fastnn train --save writes one)")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "__fastnn__" not in z.files:
                raise bad("not a file written by fastnn train --save (no __fastnn__ entry)")
            meta = json.loads(str(z["__fastnn__"]))
            params = {k: z[k].copy() for k in z.files if k != "__fastnn__"}
    except UsageError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile,
            zipfile.LargeZipFile, NotImplementedError) as e:
        # ValueError includes a JSON error and "Object arrays cannot be loaded" (pickles)
        why = "a damaged .npz file" if not isinstance(e, ValueError) or "pickle" not in str(e) \
            else "holds Python objects, which fastnn never loads"
        raise bad("%s (%s)" % (why, str(e).splitlines()[0] if str(e) else type(e).__name__)) \
            from None
    if not isinstance(meta, dict) or not isinstance(meta.get("arch"), dict):
        raise bad("its __fastnn__ description has no net architecture")
    return params, meta


def check_params(path, params, wanted, option="--load"):
    """Check that ``params`` has exactly the keys and shapes of ``wanted`` (a dict of
    arrays: the net the file describes), finite float values; UsageError otherwise."""
    def bad(why):
        return UsageError("%s %s: %s" % (option, path, why))

    missing = [k for k in wanted if k not in params]
    if missing:
        raise bad("parameter%s %s missing" % ("" if len(missing) == 1 else "s",
                                              ", ".join(missing)))
    extra = [k for k in params if k not in wanted]
    if extra:
        raise bad("unexpected parameter%s %s for this net (it has %s)"
                  % ("" if len(extra) == 1 else "s", ", ".join(extra), ", ".join(wanted)))
    for k, w in wanted.items():
        v = params[k]
        if v.shape != w.shape:
            raise bad("%s has shape %s, the net needs %s" % (k, v.shape, w.shape))
        if v.dtype.kind != "f":
            raise bad("%s has dtype %s, not a float array" % (k, v.dtype))
        if not np.isfinite(v).all():
            raise bad("%s holds NaN or infinite values" % k)
