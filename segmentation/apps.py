from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SegmentationConfig(AppConfig):
    name = "segmentation"
    verbose_name = _("Segmentation")

    def ready(self):
        from members.events import interactions_recorded, order_recorded, orders_imported, refund_recorded
        from segmentation import subscribers

        order_recorded.subscribe(subscribers.refresh_member_on_order)
        refund_recorded.subscribe(subscribers.refresh_member_on_refund)
        orders_imported.subscribe(subscribers.recompute_after_import)
        interactions_recorded.subscribe(subscribers.refresh_member_on_interactions)
