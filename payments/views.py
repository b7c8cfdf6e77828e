"""Hosted pages a merchant's customer sees: the 3-D Secure challenge.

The unguessable token in the URL is the credential, as a real ACS page's
transaction id is; there is no login. CSRF protects the answer form.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from config.errors import PayLabError
from payments import money
from payments.models import ThreeDSChallenge
from payments.services.intents import three_ds_challenge_complete


@require_http_methods(["GET", "POST"])
def three_ds_challenge(request: HttpRequest, token: str) -> HttpResponse:
    challenge = (
        ThreeDSChallenge.objects.select_related(
            "payment_intent__merchant", "payment_intent__payment_method"
        )
        .filter(pk=token)
        .first()
    )
    if challenge is None:
        return render(request, "payments/three_ds_challenge.html", {"missing": True}, status=404)
    if request.method == "POST":
        succeeded = request.POST.get("result") == "complete"
        try:
            result = three_ds_challenge_complete(token=token, succeeded=succeeded)
        except PayLabError as error:
            return render(
                request,
                "payments/three_ds_challenge.html",
                {"challenge": challenge, "error": error.message},
                status=400,
            )
        if result.return_url:
            separator = "&" if "?" in result.return_url else "?"
            query = urlencode(
                {
                    "payment_intent": result.intent.id,
                    "payment_intent_client_secret": result.intent.client_secret,
                }
            )
            return HttpResponseRedirect(result.return_url + separator + query)
        return render(
            request,
            "payments/three_ds_challenge.html",
            {"challenge": challenge, "done": result.intent},
        )
    intent = challenge.payment_intent
    return render(
        request,
        "payments/three_ds_challenge.html",
        {
            "challenge": challenge,
            "intent": intent,
            "amount": money.format_amount(intent.amount, intent.currency),
            "expired": challenge.expires_at <= timezone.now(),
        },
    )
