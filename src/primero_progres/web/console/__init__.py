"""The operator console at ``/admin``: see and repair the bridge in a browser.

Server-rendered (Jinja2); every action is a plain form POST answered with a 303 back to its
page (Post/Redirect/Get), so it works without JavaScript. The vendored htmx only refreshes the
overview in place. Pages show IDs, codes, statuses, counts and times, never personal data: they
read the store's operator API (``store.reports``, ``.jobs``, ``.polls``, ``.peers``,
``.audit``, ``.accounts``), which never decrypts a payload.

The URLs are stable (alerts link to them): ``/admin/``, ``/admin/dead-letters?flow=&reason=``,
``/admin/trace?q=``, ``/admin/messages``, ``/admin/polls``, ``/admin/audit``,
``/admin/settings``, ``/admin/accounts``.
"""

from .routes import build_console, install

__all__ = ["build_console", "install"]
