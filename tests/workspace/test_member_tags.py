"""Member tags (#19, seed 000's 客户标签): staff tag a member in the 360 (who and when kept, in the
audit trail too), take a tag off, filter the member list by a tag and narrow a campaign by tags."""

import pytest
from django.urls import reverse
from django.utils import translation

from audit.models import AuditedMemberTag
from campaigns.models import Campaign
from campaigns.services.campaigns import campaign_estimate
from members.models import MemberTag
from members.services.tags import member_tag_add, member_tag_remove
from tests.factories import CampaignBenefitFactory, CampaignFactory, MemberFactory
from tests.workspace.builders import role_user, two_stores

pytestmark = pytest.mark.django_db


def tags_url(member) -> str:
    return reverse("admin:members_member_tags", args=[member.pk])


def member_360(member) -> str:
    return reverse("admin:members_member_change", args=[member.pk])


def test_staff_tag_a_member_in_the_360_and_take_a_tag_off(client):
    # given: a clerk of the member's store
    stores = two_stores()
    member = stores.our_member
    clerk = role_user("staff", stores.ours, username="clerk")
    client.force_login(clerk)
    # when: two tags, one of them twice
    for name in ("爱喝少糖", " 企业客户 ", "爱喝少糖"):
        response = client.post(tags_url(member), {"tag": name})
        assert response.status_code == 302 and response.url.endswith("#member-tags")
    # then: each once, by the clerk, shown on the 360
    tags = list(MemberTag.objects.filter(member=member).order_by("name"))
    assert [(tag.name, tag.added_by) for tag in tags] == [("企业客户", clerk), ("爱喝少糖", clerk)]
    with translation.override("zh-hans"):
        page = client.get(member_360(member), HTTP_ACCEPT_LANGUAGE="zh-hans", follow=True).content.decode()
    assert 'id="member-tags"' in page and "爱喝少糖" in page and "企业客户" in page
    # when: one taken off
    client.post(tags_url(member), {"remove": "企业客户"})
    # then
    assert list(MemberTag.objects.filter(member=member).values_list("name", flat=True)) == ["爱喝少糖"]
    labels = list(AuditedMemberTag.pgh_event_model.objects.order_by("pgh_id").values_list("pgh_label", "name"))
    assert labels == [("created", "爱喝少糖"), ("created", "企业客户"), ("deleted", "企业客户")]


@pytest.mark.parametrize("name", ["", "a,b", "x" * 33])
def test_a_bad_tag_is_refused_with_a_message_and_nothing_stored(client, name):
    stores = two_stores()
    client.force_login(role_user("staff", stores.ours, username="clerk"))
    response = client.post(tags_url(stores.our_member), {"tag": name}, follow=True)
    assert response.status_code == 200
    assert [m.level_tag for m in response.context["messages"]] == ["error"]
    assert not MemberTag.objects.exists()


def test_analysts_see_tags_but_cannot_change_them_and_no_one_tags_another_stores_member(client):
    stores = two_stores()
    member_tag_add(member=stores.our_member, name="VIP")
    client.force_login(role_user("analyst", username="analyst"))
    assert client.post(tags_url(stores.our_member), {"tag": "x"}).status_code == 403
    assert client.post(tags_url(stores.our_member), {"remove": "VIP"}).status_code == 403
    client.force_login(role_user("staff", stores.ours, username="clerk"))
    assert client.post(tags_url(stores.their_member), {"tag": "x"}).status_code == 404
    assert list(MemberTag.objects.values_list("name", flat=True)) == ["VIP"]


def test_the_member_list_filters_by_tag(client):
    stores = two_stores()
    member_tag_add(member=stores.our_member, name="企业客户")
    member_tag_add(member=stores.their_member, name="爱喝少糖")
    client.force_login(role_user("operator", username="op"))
    url = reverse("admin:members_member_changelist")
    response = client.get(url, {"tag": "企业客户"}, follow=True)
    assert list(response.context["cl"].result_list) == [stores.our_member]
    spec = next(s for s in response.context["cl"].filter_specs if s.parameter_name == "tag")
    assert sorted(value for value, _label in spec.lookup_choices) == ["企业客户", "爱喝少糖"]


def test_a_campaign_narrowed_by_tags_reaches_members_with_one_of_them_once(segments, place):
    tagged_twice, tagged_once, untagged = MemberFactory(), MemberFactory(), MemberFactory()
    for member in (tagged_twice, tagged_once, untagged):
        place(member, "champions")
    member_tag_add(member=tagged_twice, name="企业客户")
    member_tag_add(member=tagged_twice, name="VIP")
    member_tag_add(member=tagged_once, name="VIP")
    campaign = CampaignFactory(target_kind=Campaign.TargetKind.SEGMENT)
    campaign.segments.set([segments["champions"]])
    CampaignBenefitFactory(campaign=campaign)
    assert campaign_estimate(campaign=campaign).reach == 3
    Campaign.objects.filter(pk=campaign.pk).update(member_tags="VIP, 企业客户")
    assert campaign_estimate(campaign=Campaign.objects.get(pk=campaign.pk)).reach == 2
    Campaign.objects.filter(pk=campaign.pk).update(member_tags="企业客户")
    assert campaign_estimate(campaign=Campaign.objects.get(pk=campaign.pk)).reach == 1


def test_removing_a_tag_the_member_does_not_have_changes_nothing(db):
    member = MemberFactory()
    assert member_tag_remove(member=member, name="nope") is False
