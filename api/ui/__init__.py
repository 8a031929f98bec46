"""The staff dashboard: server-rendered pages under /ui (Jinja2 templates, htmx, inline SVG).

It is a client of the JSON API, in-process: every page reads through the API and every action
is an API call made with the signed-in user's token, so roles, rules, problem details and the
audit trail are the API's own. The routes are plain Starlette routes (not API operations): they
stay out of the OpenAPI document and the role matrix, which describe the JSON API.
"""

from api.ui.routes import router

__all__ = ["router"]
