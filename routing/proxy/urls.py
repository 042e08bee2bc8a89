"""``/v1/``: the OpenAI-compatible proxy (see docs/proxy.md)."""

from __future__ import annotations

from django.urls import path

from routing.proxy import views

app_name = "proxy"
urlpatterns = [
    path("models", views.models_list, name="models"),
    path("chat/completions", views.chat_completions, name="chat-completions"),
]
