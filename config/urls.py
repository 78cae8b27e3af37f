from django.conf import settings
from django.conf.urls.i18n import i18n_patterns
from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from django_otp.plugins.otp_totp.models import TOTPDevice
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from campaigns.apis.engagement import tracked_link_follow
from config.health import healthz
from config.security import staff_only_unless_public
from config.two_factor import StaffLoginForm, two_factor_setup

admin.site.index_title = _("Home")  # the frame's header names the site (UNFOLD's SITE_HEADER)
admin.site.login_form = StaffLoginForm  # with the authenticator code (config.two_factor)
admin.site.unregister(TOTPDevice)  # authenticators are set up by their owner at /admin/two-factor/

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("t/<str:token>", tracked_link_follow, name="tracked-link"),  # links in messages to members
    path("api/v1/", include("members.urls")),
    path("api/v1/", include("campaigns.urls")),
    path("api/v1/", include("workspace.urls")),
    # public unless HUIYUAN_API_DOCS_PUBLIC is off (production's default): then staff only
    path("api/schema/", staff_only_unless_public(SpectacularAPIView.as_view()), name="schema"),
    path("api/docs/", staff_only_unless_public(SpectacularSwaggerView.as_view(url_name="schema")), name="api-docs"),
    path("api/redoc/", staff_only_unless_public(SpectacularRedocView.as_view(url_name="schema")), name="api-redoc"),
]
urlpatterns += i18n_patterns(
    path("admin/two-factor/", two_factor_setup, name="two_factor_setup"),
    path("admin/", admin.site.urls),
    prefix_default_language=False,
)

if settings.DEBUG:
    from django.contrib.staticfiles.urls import staticfiles_urlpatterns

    urlpatterns += staticfiles_urlpatterns()
