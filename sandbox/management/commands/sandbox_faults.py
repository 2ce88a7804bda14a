"""`manage.py sandbox_faults`: set or reset the faults a sandbox CRM injects into its data calls."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from sandbox.faults import CRMS, faults_reset, faults_set


class Command(BaseCommand):
    help = ("Set the faults a sandbox CRM injects into its data calls for this run (knobs not given are off), "
            "or --reset them. Setting restarts the request series, so a seed replays the same faults.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--crm", choices=CRMS, required=True)
        parser.add_argument("--reset", action="store_true", help="No faults any more.")
        parser.add_argument("--error-rate", type=float, default=0.0, help="Share answered 500/502/503, not applied.")
        parser.add_argument("--rate-limit-rate", type=float, default=0.0, help="Share refused as rate limited.")
        parser.add_argument("--lock-rate", type=float, default=0.0,
                            help="HubSpot: share answered 423; Salesforce: share of records UNABLE_TO_LOCK_ROW.")
        parser.add_argument("--timeout-rate", type=float, default=0.0, help="Share that waits --timeout-seconds first.")
        parser.add_argument("--timeout-seconds", type=float, default=30.0)
        parser.add_argument("--lost-reply-rate", type=float, default=0.0, help="Share applied whose reply is dropped.")
        parser.add_argument("--latency-ms", type=int, default=0, help="Added to every data call.")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **options) -> None:
        crm = options["crm"]
        if options["reset"]:
            faults_reset(crm=crm)
            self.stdout.write(f"{crm}: no faults")
            return
        knobs = {name: options[name] for name in ("error_rate", "rate_limit_rate", "lock_rate", "timeout_rate",
                                                   "timeout_seconds", "lost_reply_rate", "latency_ms", "seed")}
        try:
            faults_set(crm=crm, **knobs)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"{crm}: " + ", ".join(f"{name}={value}" for name, value in knobs.items()))
