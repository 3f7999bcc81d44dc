"""The kernel manager of Tarmac's Voila (loaded inside the Voila process only, by
``--VoilaConfiguration.multi_kernel_manager_class``): jupyter_server's own, whose idle culler
(``MappingKernelManager.cull_idle_timeout``) counts the time since a kernel's last page went
away.

jupyter_server's culler stops a kernel that has no connection and no activity for the
timeout. The dashboard's kernel is never idle by that measure: its auto-refresh and its
follower redraw widgets (``comm_msg`` on IOPub, parented to the cell's ``execute_request``)
every few seconds, page or no page. Measured: three tabs closed without ``beforeunload`` (a
crashed browser), a 20 s timeout, kernels still 3 after 2 minutes. So
:func:`pipelines.stack.voila.command` excludes those message types from the activity, and this
class restarts the idle clock when the last connection of a kernel closes: a kernel is culled
``cull_idle_timeout`` seconds after its last page left (a page that reconnects within that time,
after a network blip, keeps it).
"""

from __future__ import annotations

from jupyter_server._tz import utcnow
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager


class PageKernelManager(AsyncMappingKernelManager):
    """``AsyncMappingKernelManager`` whose idle clock restarts when a kernel's last page
    disconnects."""

    def notify_disconnect(self, kernel_id: str) -> None:
        super().notify_disconnect(kernel_id)
        kernel = self._kernels.get(kernel_id)
        if kernel is not None and self._kernel_connections.get(kernel_id, 0) <= 0:
            kernel.last_activity = utcnow()


def _page_sets_the_xsrf_cookie() -> None:
    """Voila 0.5.13's page posts its kernel's shutdown on ``beforeunload`` with the ``_xsrf``
    cookie as form field, a cookie its page handler never sets (only jupyter_server's own
    templates touch ``xsrf_token``): every shutdown was refused, ``403 '_xsrf' argument
    missing from POST`` in Voila's log and a console error on every reload (issue 20), and the
    kernel waited for the culler. The page's handler now sets the cookie (tornado's
    ``xsrf_token``) after jupyter_server's ``prepare``: the shutdown is accepted (204), the
    XSRF check itself unchanged. Applied when Voila loads this module (its kernel manager)."""
    from voila.handler import VoilaHandler

    if getattr(VoilaHandler, "_tarmac_xsrf_cookie", False):
        return
    prepare = VoilaHandler.prepare

    async def prepare_and_set_cookie(self: VoilaHandler, *args: object, **kwargs: object) -> None:
        await prepare(self, *args, **kwargs)
        _ = self.xsrf_token  # tornado sets the `_xsrf` cookie on first access

    VoilaHandler.prepare = prepare_and_set_cookie  # type: ignore[method-assign]
    VoilaHandler._tarmac_xsrf_cookie = True  # type: ignore[attr-defined]


_page_sets_the_xsrf_cookie()
