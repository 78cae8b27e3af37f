"""Every model of the domain has a factory, and every factory makes rows the model accepts."""

import inspect

import factory
import pytest
from django.apps import apps

from tests import factories

DOMAIN_APPS = ("members", "segmentation", "campaigns")

FACTORIES = [
    value
    for value in vars(factories).values()
    if inspect.isclass(value)
    and issubclass(value, factory.django.DjangoModelFactory)
    and value is not factory.django.DjangoModelFactory
]


def test_every_model_of_the_domain_has_a_factory():
    # given every model of the three apps, and the models the factories make
    models = {model for model in apps.get_models() if model._meta.app_label in DOMAIN_APPS}
    covered = {each._meta.model for each in FACTORIES}
    # then none is left without one
    assert sorted(model._meta.label for model in models - covered) == []


@pytest.mark.django_db
@pytest.mark.parametrize("model_factory", FACTORIES, ids=lambda each: each.__name__)
def test_a_factory_makes_valid_rows_with_its_defaults(model_factory):
    # when two rows are made with the defaults (sequences keep unique fields apart)
    first, second = model_factory(), model_factory()
    # then each passes the model's validation, constraints included, and is in the database
    for row in (first, second):
        row.full_clean()
        assert type(row)._default_manager.filter(pk=row.pk).exists()
