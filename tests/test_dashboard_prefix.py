"""The dashboard in a host project that mounts Trellis under ``trellis/`` (DESIGN §14): every
page renders, and every link, form, script and URL handed to the scripts stays under the
prefix (or is the host's own sign-in page); a host without the sign-in names still renders.
The same in a real browser, sockets included, is in tests/test_browser.py."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from django.urls import resolve, reverse

from runs.models import Session
from runs.rules.states import RunState
from runs.store.writes import move_run
from tests.test_dashboard import dash_workflow, run_for

PREFIXED = "tests.testapp.prefixed_urls"
BARE_HOST = "tests.testapp.bare_host_urls"
JS_DIR = Path(__file__).resolve().parent.parent / "frontend" / "static" / "frontend" / "js"

pytestmark = pytest.mark.django_db


class Page(HTMLParser):
    """The URLs of an HTML page: every href, src and action, and the ``page-data`` blob."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.data: dict | None = None
        self._in_data = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.urls += [attrs[name] for name in ("href", "src", "action") if name in attrs]
        self._in_data = tag == "script" and attrs.get("id") == "page-data"

    def handle_data(self, data):
        if self._in_data:
            self.data = json.loads(data)
            self._in_data = False


def fill(template: str, **values: str) -> str:
    """What common.js's ``fillUrl`` makes of a URL template."""
    for name, value in values.items():
        template = template.replace(f"{{{name}}}", value)
    return template


@pytest.fixture
def shown(user):
    """A running run and a session, so that the pages have rows and links to show."""
    version = dash_workflow(user)
    run = run_for(version, user)
    move_run(run, RunState.PENDING, RunState.RUNNING)
    Session.objects.create(owner=user, name="s")
    return run, version


def page_paths(run, version) -> list[str]:
    """The path of every dashboard page (reversed in the URLconf the test has set)."""
    return [
        reverse("frontend:runs"),
        reverse("frontend:run", args=[run.pk]),
        reverse("frontend:node", args=[run.pk, "start"]),
        reverse("frontend:workflows"),
        reverse("frontend:workflow", args=[version.workflow.name]),
        reverse("frontend:workers"),
        reverse("frontend:sessions"),
    ]


def urls_of(client, path: str) -> tuple[list[str], dict]:
    """The page's links resolved against its own path, and its scripts' URLs."""
    response = client.get(path)
    assert response.status_code == 200, path
    page = Page(response.content.decode())
    links = [urlsplit(urljoin(path, url)).path for url in page.urls]
    return links, (page.data or {}).get("urls", {})


def test_every_page_and_every_url_stays_under_the_prefix(settings, user_client, shown):
    settings.ROOT_URLCONF = PREFIXED
    pages = page_paths(*shown)
    assert all(path.startswith("/trellis/dashboard/") for path in pages)
    host_pages = {reverse("logout"), reverse("password_change")}
    for path in pages:
        links, script_urls = urls_of(user_client, path)
        assert links, path
        outside = [
            url
            for url in [*links, *script_urls.values()]
            if not url.startswith(("/trellis/", "/static/"))
        ]
        if path.endswith("/nodes/start/"):  # a fragment, without the sidebar
            assert outside == [], path
        else:
            assert sorted(set(outside)) == sorted(host_pages), path


def test_the_scripts_get_the_prefixed_api_sockets_and_pages(settings, user_client, user):
    settings.ROOT_URLCONF = PREFIXED
    version = dash_workflow(user)
    run = run_for(version, user)
    listing = user_client.get(reverse("frontend:runs")).context["page_data"]["urls"]
    assert listing["runs"] == "/trellis/api/v1/runs/"
    assert listing["socket"] == "/trellis/ws/runs/"
    assert resolve(fill(listing["run"], id=str(run.pk))).url_name == "run"
    name = version.workflow.name
    assert fill(listing["workflow"], name=name) == f"/trellis/dashboard/workflows/{name}/"
    detail = user_client.get(reverse("frontend:run", args=[run.pk])).context["page_data"]["urls"]
    assert detail["events"] == f"/trellis/api/v1/runs/{run.pk}/events/"
    assert detail["socket"] == f"/trellis/ws/runs/{run.pk}/"
    assert fill(detail["node"], node="start") == f"/trellis/dashboard/runs/{run.pk}/nodes/start/"
    workers = user_client.get(reverse("frontend:workers")).context["page_data"]["urls"]
    assert workers == {"workers": "/trellis/api/v1/workers/"}


def test_standalone_urls_are_the_root_ones(user_client, user):
    run = run_for(dash_workflow(user), user)
    listing = user_client.get(reverse("frontend:runs")).context["page_data"]["urls"]
    assert (listing["runs"], listing["socket"]) == ("/api/v1/runs/", "/ws/runs/")
    assert listing["run"] == "/dashboard/runs/{id}/"
    detail = user_client.get(reverse("frontend:run", args=[run.pk])).context["page_data"]["urls"]
    assert detail["socket"] == f"/ws/runs/{run.pk}/"
    assert detail["node"] == f"/dashboard/runs/{run.pk}/nodes/{{node}}/"


def test_host_without_sign_in_names_renders_without_their_links(settings, staff_client, shown):
    """No ``logout``, ``password_change`` or admin in the host: the pages render without
    those links (no NoReverseMatch), and the login form posts to ``settings.LOGIN_URL``."""
    settings.ROOT_URLCONF = BARE_HOST
    settings.LOGIN_URL = "/signin/"
    pages = page_paths(*shown)
    for path in pages:
        links, script_urls = urls_of(staff_client, path)
        assert all(url.startswith(("/trellis/", "/static/")) for url in links), path
        assert all(url.startswith("/trellis/") for url in script_urls.values()), path
    sidebar = staff_client.get(pages[0]).content.decode()
    assert "Log out" not in sidebar and "Admin" not in sidebar and "Password" not in sidebar
    login = Page(staff_client.get("/signin/").content.decode())
    assert "/signin/" in login.urls  # the form's action


def test_login_logout_and_admin_links_when_the_host_names_them(settings, staff_client):
    settings.ROOT_URLCONF = PREFIXED
    html = staff_client.get(reverse("frontend:runs")).content.decode()
    assert f'method="post" action="{reverse("logout")}"' in html  # a POST form (Django 5)
    assert Page(html).urls.count(reverse("admin:index")) == 1
    assert reverse("password_change") in Page(html).urls


def test_no_script_hard_codes_a_path():
    scripts = sorted(JS_DIR.glob("*.js"))
    assert scripts
    for script in scripts:
        text = script.read_text()
        for path in ("/api/", "/dashboard/", "/ws/"):
            assert path not in text, f"{script.name} hard-codes {path}"
