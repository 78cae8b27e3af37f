"""The language of a page: the URL's prefix (``/en/admin/``), else the language the user chose
(the top bar's switcher sets a cookie), else the browser's ``Accept-Language``, else
``LANGUAGE_CODE`` (Simplified Chinese, whose pages have no prefix).

Django's ``LocaleMiddleware`` ignores the cookie and the browser on an unprefixed path when the
default language has no prefix (``i18n_patterns(prefix_default_language=False)``), so ``/admin/``
was always Chinese. Here a ``GET`` of an unprefixed page whose user wants another language is
redirected to that language's prefix (``/admin/`` → ``/en/admin/``), as Django does when every
language has a prefix; the switcher back to Chinese lands on the unprefixed path. Paths outside
``i18n_patterns`` (the API, health) keep the default language.

The switcher posts to Django's ``set_language``, which sends the user back to the page they came
from (``next``, else the referer) translated by resolving it in the *active* language: on the
unprefixed ``/i18n/setlang/`` that is Chinese, which cannot resolve ``/en/admin/…``, so choosing
Chinese on an English page used to land on the same English page. The page's own language is made
the active one for that request.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.middleware.locale import LocaleMiddleware as DjangoLocaleMiddleware
from django.urls import NoReverseMatch, get_script_prefix, is_valid_path, reverse
from django.utils import translation
from django.utils.cache import patch_vary_headers


class LocaleMiddleware(DjangoLocaleMiddleware):
    def process_request(self, request):
        super().process_request(request)
        if request.method == "POST" and _is_set_language(request):
            came_from = request.POST.get("next") or request.META.get("HTTP_REFERER") or ""
            language = translation.get_language_from_path(urlsplit(came_from).path)
            if language:
                translation.activate(language)
                request.LANGUAGE_CODE = translation.get_language()
            return None
        if request.method not in ("GET", "HEAD") or translation.get_language_from_path(request.path_info):
            return None
        wanted = translation.get_language_from_request(request, check_path=False)
        if translation.get_supported_language_variant(wanted) == translation.get_supported_language_variant(
            settings.LANGUAGE_CODE
        ):
            return None
        urlconf = getattr(request, "urlconf", settings.ROOT_URLCONF)
        with translation.override(wanted):  # the prefix pattern matches the active language's prefix
            if not is_valid_path(f"/{wanted}{request.path_info}", urlconf):
                return None
        script_prefix = get_script_prefix()
        url = request.get_full_path().replace(script_prefix, f"{script_prefix}{wanted}/", 1)
        redirect = self.response_redirect_class(url)
        patch_vary_headers(redirect, ("Accept-Language", "Cookie"))
        return redirect


def _is_set_language(request) -> bool:
    try:
        return request.path_info == reverse("set_language")
    except NoReverseMatch:
        return False
