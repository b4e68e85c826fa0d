"""Delete the files shared in calls that are older than a number of hours, and their data."""

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from rooms import services


class Command(BaseCommand):
    help = (
        "Delete the files shared in calls through the media server that are older than "
        "--older-than hours (default 24), with their stored data, and stored data no file "
        "stands for. Files also go when a call ends; this catches calls that never did."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=float,
            default=24.0,
            metavar="HOURS",
            help="Delete files shared at least this many hours ago (default 24).",
        )

    def handle(self, *args, older_than: float, **options):
        if older_than < 0:
            raise CommandError("--older-than must be zero or more hours.")
        before = timezone.now() - dt.timedelta(hours=older_than)
        deleted = services.call_files_delete_old(before=before)
        self.stdout.write(f"Deleted {deleted} shared file{'' if deleted == 1 else 's'}.")
