"""The language of the admin (``config.locale.LocaleMiddleware``): the URL's prefix (``/en/``), else
the language chosen with the top bar's switcher (a cookie), else the browser's ``Accept-Language``,
else Simplified Chinese. An unprefixed page asked for in English is redirected to its ``/en/`` URL."""

import re
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings

from tests.test_admin_crawl_zh import chinese_by_default
from tests.workspace.builders import role_user

pytestmark = pytest.mark.django_db
__all__ = ["chinese_by_default"]  # the fixture, shared with the crawl

ENGLISH = "Change password"  # the user menu, in each language
CHINESE = "修改密码"


@pytest.fixture
def operator_client(client, chinese_by_default):
    client.force_login(role_user("operator"))
    return client


def language_of(response) -> str:
    assert response.status_code == 200
    html = response.content.decode()
    match = re.search(r'<html[^>]*\slang="([^"]+)"', html)
    assert match, "no <html lang>"
    return match.group(1)


def test_the_first_visit_follows_the_browser(operator_client):
    # when a browser that prefers English opens the admin for the first time
    response = operator_client.get("/admin/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9", follow=True)
    # then the admin is in English, at its English address
    assert response.redirect_chain == [("/en/admin/", 302)]
    assert language_of(response) == "en"
    assert ENGLISH in response.content.decode()
    assert response["Content-Language"] == "en"
    # and a browser that prefers Chinese gets Chinese
    response = operator_client.get("/admin/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9,en;q=0.8")
    assert language_of(response) == "zh-hans"
    assert CHINESE in response.content.decode()


def test_a_browser_language_the_product_does_not_speak_gets_chinese(operator_client):
    response = operator_client.get("/admin/", HTTP_ACCEPT_LANGUAGE="fr-FR,fr;q=0.9")
    assert language_of(response) == "zh-hans"


def test_the_top_bar_offers_the_other_language_for_this_page(operator_client):
    # when a list is opened in Chinese
    html = operator_client.get("/admin/members/member/?q=2213", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    # then the top bar shows both languages by their own names and posts English for this very page
    switch = re.search(r'<form action="/i18n/setlang/" method="post" id="language-switch".*?</form>', html, re.S)
    assert switch, "no language switcher in the top bar"
    form = switch.group(0)
    assert 'name="next" value="/admin/members/member/?q=2213"' in form
    assert re.search(r'<button type="submit" name="language" value="en"[^>]*>English</button>', form)
    assert "简体中文" in form and 'value="zh-hans"' not in form  # the current one is not a button
    # and the user menu in the sidebar offers both too
    menus = re.findall(r'<form action="/i18n/setlang/" method="post" class=.*?</form>', html, re.S)
    assert {re.search(r'name="language"[^>]*value="([^"]+)"', menu).group(1) for menu in menus} == {"zh-hans", "en"}


def test_the_top_bar_switch_keeps_the_page_and_its_query(operator_client):
    response = operator_client.post("/i18n/setlang/", {"language": "en", "next": "/admin/members/member/?q=2213"})
    assert response["Location"] == "/en/admin/members/member/?q=2213"
    english_page = "/en/admin/members/member/?q=2213"
    response = operator_client.post("/i18n/setlang/", {"language": "zh-hans", "next": english_page})
    assert response["Location"] == "/admin/members/member/?q=2213"


def test_the_switcher_opens_the_same_page_in_the_chosen_language(operator_client):
    # given a Chinese browser on the member list
    page = "/admin/members/member/"
    assert language_of(operator_client.get(page, HTTP_ACCEPT_LANGUAGE="zh-CN")) == "zh-hans"
    # when English is chosen in the top bar (the form posts no "next": the browser sends the page
    # it was on as the referer)
    response = operator_client.post(
        "/i18n/setlang/", {"language": "en", "next": ""}, HTTP_REFERER=f"http://testserver{page}"
    )
    # then the same page opens in English
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == "/en/admin/members/member/"
    assert language_of(operator_client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="zh-CN")) == "en"
    # and the choice (a cookie) wins over the browser's Accept-Language on an unprefixed link
    assert operator_client.cookies[django_settings.LANGUAGE_COOKIE_NAME].value == "en"
    assert language_of(operator_client.get("/admin/", HTTP_ACCEPT_LANGUAGE="zh-CN", follow=True)) == "en"
    # when Chinese is chosen again from the English page
    response = operator_client.post(
        "/i18n/setlang/", {"language": "zh-hans"}, HTTP_REFERER="http://testserver/en/admin/members/member/"
    )
    # then the page opens without the prefix, in Chinese, even for an English browser
    assert urlsplit(response["Location"]).path == "/admin/members/member/"
    response = operator_client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="en", follow=True)
    assert response.redirect_chain == []
    assert language_of(response) == "zh-hans"


def test_the_en_prefix_wins_over_the_cookie_and_the_browser(operator_client):
    operator_client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    response = operator_client.get("/en/admin/", HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert language_of(response) == "en"
    # and its links keep the prefix
    assert 'href="/en/admin/members/member/' in response.content.decode()


def test_the_login_page_follows_the_browser_too(client, chinese_by_default):
    assert language_of(client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="en", follow=True)) == "en"
    assert language_of(client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="zh-CN")) == "zh-hans"
