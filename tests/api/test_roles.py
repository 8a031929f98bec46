"""Every route and every role, against the documented matrix (api/roles.py, README "Roles")."""

import re
from pathlib import Path

from fastapi.routing import APIRoute

from api.roles import ROLES, markdown, matrix

README = Path(__file__).resolve().parents[2] / "README.md"


def routes(app):
    def walk(items):
        for item in items:
            if isinstance(item, APIRoute):
                yield item
            elif hasattr(item, "original_router"):
                yield from walk(item.original_router.routes)

    return [(method, route.path) for route in walk(app.routes) for method in sorted(route.methods)]


def enforced_roles(app):
    def roles_of(dependant):
        for dependency in dependant.dependencies:
            found = getattr(dependency.call, "allowed_roles", None) or roles_of(dependency)
            if found:
                return found
        return None

    out = {}

    def walk(items):
        for item in items:
            if isinstance(item, APIRoute):
                for method in item.methods:
                    out[(method, item.path)] = frozenset(roles_of(item.dependant) or ())
            elif hasattr(item, "original_router"):
                walk(item.original_router.routes)

    walk(app.routes)
    return out


def test_every_route_is_documented_and_enforced_as_documented(stack):
    app = stack.http._transport.app
    documented = matrix()
    assert set(routes(app)) == set(documented), "a route is missing from api/roles.py, or a documented one is gone"
    assert enforced_roles(app) == documented


def test_the_readme_shows_the_matrix():
    assert markdown() in README.read_text()


async def test_each_role_is_allowed_or_denied_exactly_as_documented(stack):
    failures = []
    for (method, path), allowed in matrix().items():
        url = re.sub(r"\{[^}]+\}", "x-unknown", path)
        for role in ROLES:
            response = await stack.http.request(
                method, url, headers={**stack.auth(role), "Content-Type": "application/json"}, content=b"{}"
            )
            if not allowed:
                denied = False
            else:
                denied = response.status_code == 403
                if denied and response.headers["content-type"] != "application/problem+json":
                    failures.append(f"{role} {method} {path}: 403 without problem+json")
            if (role in allowed or not allowed) == denied:
                failures.append(
                    f"{role} {method} {path}: got {response.status_code}, documented "
                    f"{'allowed' if role in allowed or not allowed else 'denied'}"
                )
            if response.status_code == 401:
                failures.append(f"{role} {method} {path}: 401 with a valid token")
    assert failures == []
