"""The language of a request: the URL's prefix (``/en/admin/``), else the language the user chose
(the top bar's switcher sets a cookie), else the browser's ``Accept-Language``, else
``LANGUAGE_CODE`` (Simplified Chinese).

Django's ``LocaleMiddleware`` skips the cookie and the browser for an unprefixed path when the
default language has no prefix (``i18n_patterns(prefix_default_language=False)``): ``/admin/`` would
always be Chinese, and a user who chose English would be sent back to Chinese by every link that
lost the prefix. This middleware asks in the order above for every path.
"""

from django.middleware.locale import LocaleMiddleware as DjangoLocaleMiddleware
from django.utils import translation


class LocaleMiddleware(DjangoLocaleMiddleware):
    def process_request(self, request):
        language = translation.get_language_from_request(request, check_path=True)
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
