"""A tiny localhost HTTP server for a report page and the videos it plays, with byte ranges
(browsers seek in videos with ranges), for browsers that refuse local files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

def make_server(page: str | os.PathLike, root: str | os.PathLike | None = None, port: int = 0,
                host: str = "127.0.0.1"):
    """A localhost HTTP server for ``page`` and the files it references: serves ``root`` (default:
    the page's folder) with byte-range support (browsers seek in videos with ranges). Returns
    ``(server, url)``; call ``server.serve_forever()``, and ``server.server_close()`` after."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import quote

    page = Path(page).resolve()
    root = Path(root).resolve() if root is not None else page.parent
    if not page.is_relative_to(root):
        raise ValueError(f"{page} is not inside the served folder {root}")

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, fmt, *args):   # quiet: the terminal shows the URL only
            pass

        def send_head(self):
            rng = self.headers.get("Range")
            path = Path(self.translate_path(self.path))
            if not rng or not rng.startswith("bytes=") or not path.is_file():
                return super().send_head()
            size = path.stat().st_size
            first, _, last = rng[6:].split(",")[0].strip().partition("-")
            try:
                if first:
                    start, end = int(first), (int(last) if last else size - 1)
                else:
                    start, end = max(0, size - int(last)), size - 1
            except ValueError:
                return super().send_head()
            end = min(end, size - 1)
            if start > end or start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return None
            fh = open(path, "rb")
            fh.seek(start)
            self.send_response(206)
            self.send_header("Content-Type", self.guess_type(str(path)))
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            self._remaining = end - start + 1
            return fh

        def copyfile(self, source, outputfile):
            remaining = getattr(self, "_remaining", None)
            if remaining is None:
                return super().copyfile(source, outputfile)
            while remaining > 0:
                chunk = source.read(min(65536, remaining))
                if not chunk:
                    break
                outputfile.write(chunk)
                remaining -= len(chunk)
            self._remaining = None

    server = ThreadingHTTPServer((host, port), functools.partial(Handler, directory=str(root)))
    rel = quote(page.relative_to(root).as_posix())
    return server, f"http://{host}:{server.server_address[1]}/{rel}"


def serve_root(page: str | os.PathLike, videos: Sequence[str | os.PathLike] = ()) -> Path:
    """The folder to serve so that ``page`` and every referenced video are inside it."""
    dirs = [str(Path(page).resolve().parent)] + [str(Path(v).resolve().parent) for v in videos]
    return Path(os.path.commonpath(dirs))


def serve(page: str | os.PathLike, videos: Sequence[str | os.PathLike] = (), port: int = 0,
          announce=print) -> None:
    """Serve ``page`` (and the videos it plays) on localhost until interrupted (Ctrl-C)."""
    server, url = make_server(page, serve_root(page, videos), port)
    announce(f"serving the report at {url}  (Ctrl-C to stop; only this machine can connect)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
