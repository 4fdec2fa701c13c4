"""The auditor's and operator's console, served by ``pdp serve`` at ``/console``.

Server-rendered pages (Jinja2 templates, htmx for partial updates, Chart.js for
the overview), with every asset vendored under ``static/`` so it works offline
and needs no Node at run time. Who may see what is the bundle's own Cedar
policies' answer (:mod:`pdp.console.access`). :func:`pdp.console.app.install_console`
mounts it.
"""
