import pytest
from django.core.exceptions import ValidationError

from members.mobile import mask_mobile, normalize_mobile
from members.services.members import member_register


@pytest.mark.parametrize(
    "spelling",
    [
        "13800138000",
        "+86 138-0013-8000",
        "8613800138000",
        "008613800138000",
        "１３８００１３８０００",
        "+86 (138) 0013 8000",
        " 138 0013 8000 ",
    ],
)
def test_every_spelling_normalises_to_the_same_number(spelling):
    assert normalize_mobile(spelling) == "13800138000"


@pytest.mark.parametrize(
    "bad", ["", "12345", "23800138000", "1380013800", "138001380001", "abc13800138000", "+1 415 555 0100"]
)
def test_invalid_numbers_are_refused(bad):
    with pytest.raises(ValidationError):
        normalize_mobile(bad)


def test_mask_keeps_prefix_and_last_four():
    assert mask_mobile("13800138000") == "138****8000"


@pytest.mark.django_db
def test_the_same_number_in_another_spelling_is_the_same_member():
    # given
    member = member_register(mobile="+86 138-0013-8000", name="王芳")
    # when / then
    assert member.mobile == "13800138000"
    for spelling in ("8613800138000", "１３８００１３８０００"):
        with pytest.raises(ValidationError) as excinfo:
            member_register(mobile=spelling, name="另一个")
        assert "mobile" in excinfo.value.message_dict


@pytest.mark.django_db
def test_registration_gives_a_unique_unambiguous_referral_code():
    first = member_register(mobile="13800138001")
    second = member_register(mobile="13800138002")
    assert first.referral_code != second.referral_code
    assert not set(first.referral_code) & set("01IOL")
