"""A host project with none of the names the dashboard links to when they exist: no admin,
no ``logout`` or ``password_change``, and a login view at ``signin/`` that has no name
(``settings.LOGIN_URL`` points there)."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("signin/", auth_views.LoginView.as_view()),
    path("trellis/", include("runs.urls")),
    path("trellis/", include("frontend.urls")),
]
