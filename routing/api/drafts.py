"""``/api/v1/drafts/``: configuration drafts, and applying one.

Thin views over ``routing.services.drafts``; each change is written by
``routing.api.draft_changes.change_write`` (the configuration API's own
serializers), so a draft is refused with the live edit's messages.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from routing import selectors
from routing.api.auth import (
    DraftPermission,
    actor_name,
    draft_apply_authorizer,
)
from routing.api.draft_changes import change_write
from routing.api.views import DecisionCursor
from routing.models import DRAFT_ACTIONS, DRAFT_RESOURCES, Draft, DraftStatus
from routing.services.drafts import (
    DraftChange,
    draft_apply,
    draft_create,
    draft_discard,
    draft_update,
)

#: At most this many changes in one draft (each is validated on every write).
MAX_CHANGES = 200
DRAFT_ID = "[0-9]{1,18}"


class DraftChangeSerializer(serializers.Serializer):
    """One change: ``action`` on the ``resource`` object named ``name``."""

    resource = serializers.ChoiceField(choices=DRAFT_RESOURCES)
    action = serializers.ChoiceField(choices=DRAFT_ACTIONS)
    name = serializers.CharField(
        max_length=200,
        help_text="The object's name as the configuration API addresses it "
        "(fallbacks by model); for a create, the new object's name.",
    )
    fields = serializers.DictField(
        required=False,
        default=dict,
        help_text="The configuration API's field names and values; an update "
        "changes only these, a delete takes none.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["action"] == "delete" and attrs["fields"]:
            raise ValidationError({"fields": ["A delete takes no fields."]})
        if attrs["action"] == "update" and not attrs["fields"]:
            raise ValidationError({"fields": ["An update changes at least one field."]})
        return attrs


class DraftInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(
        max_length=2000, allow_blank=True, required=False, default=""
    )
    changes = DraftChangeSerializer(many=True, max_length=MAX_CHANGES)


class DraftPatchSerializer(serializers.Serializer):
    """What a PATCH may change; each change given is checked in full (not a
    partial serializer: that would let a change omit its resource)."""

    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(
        max_length=2000, allow_blank=True, required=False
    )
    changes = DraftChangeSerializer(many=True, max_length=MAX_CHANGES, required=False)


class DraftSerializer(serializers.ModelSerializer):
    """A draft as stored: its changes, the config version it is based on, and
    when and as which version it was applied."""

    changes = DraftChangeSerializer(many=True, read_only=True)

    class Meta:
        model = Draft
        fields = [
            "id",
            "name",
            "description",
            "changes",
            "base_version",
            "created_by",
            "created_at",
            "updated_at",
            "status",
            "applied_version",
            "applied_by",
            "applied_at",
        ]
        read_only_fields = fields


def _changes(data: list[dict[str, Any]]) -> list[DraftChange]:
    return [DraftChange(**item) for item in data]


DRAFT_PATH_ID = OpenApiParameter("id", int, OpenApiParameter.PATH)
STATUS_FILTER = OpenApiParameter(
    "status", str, enum=[s.value for s in DraftStatus], description="only these"
)


class DraftViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Configuration drafts (admin API key or staff login): proposed changes that
    live routing never reads until one is applied."""

    permission_classes = [DraftPermission]
    serializer_class = DraftSerializer
    queryset = selectors.draft_list()
    #: Newest first by ``created_at``, a bad cursor a 400 (as for decisions).
    pagination_class = DecisionCursor
    lookup_value_regex = DRAFT_ID
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> Any:
        wanted = self.request.query_params.get("status")
        if self.action != "list" or wanted is None:
            return selectors.draft_list()
        if wanted not in DraftStatus.values:
            raise ValidationError(
                {"status": [f"Use one of {', '.join(DraftStatus.values)}."]}
            )
        return selectors.draft_list(status=wanted)

    @extend_schema(parameters=[STATUS_FILTER])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Drafts, newest first."""
        return super().list(request, *args, **kwargs)

    @extend_schema(parameters=[DRAFT_PATH_ID])
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """One draft."""
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(request=DraftInputSerializer, responses={201: DraftSerializer})
    def create(self, request: Request) -> Response:
        """Validate every change as a live edit and store the draft (open)."""
        serializer = DraftInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        draft = draft_create(
            name=data["name"],
            description=data["description"],
            changes=_changes(data["changes"]),
            actor=actor_name(request),
            write=change_write,
        )
        return Response(DraftSerializer(draft).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[DRAFT_PATH_ID],
        request=DraftPatchSerializer,
        responses={200: DraftSerializer},
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        """Change an open draft; new ``changes`` are validated again and re-based."""
        serializer = DraftPatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        changes = data.get("changes")
        draft = draft_update(
            draft_id=int(pk),
            write=change_write,
            name=data.get("name"),
            description=data.get("description"),
            changes=None if changes is None else _changes(changes),
        )
        return Response(DraftSerializer(draft).data)

    @extend_schema(parameters=[DRAFT_PATH_ID], responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        """Discard an open draft (kept, ``status: discarded``)."""
        draft_discard(draft_id=int(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DraftApplyApi(APIView):
    """Apply an open draft as one configuration change (one config version)."""

    permission_classes = [DraftPermission]

    @extend_schema(
        operation_id="drafts_apply",
        parameters=[DRAFT_PATH_ID],
        request=None,
        responses={200: DraftSerializer},
    )
    def post(self, request: Request, pk: str) -> Response:
        draft = draft_apply(
            draft_id=int(pk),
            actor=actor_name(request),
            write=change_write,
            authorize=draft_apply_authorizer(request.user, PermissionDenied),
        )
        return Response(DraftSerializer(draft).data)
