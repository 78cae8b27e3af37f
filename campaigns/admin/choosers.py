"""Segment choosers of the campaigns admin: segments of every scheme, each named with its scheme
("RFM 八类 · 重要挽留用户"), read in one query."""

from segmentation.models import Segment


def segments_with_scheme(field):
    """Name the choices of a segment form field (single or multiple) with their scheme."""
    if field is not None:
        field.queryset = field.queryset.select_related("scheme")
        field.label_from_instance = Segment.name_with_scheme.fget
    return field
