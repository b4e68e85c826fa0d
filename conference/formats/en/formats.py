"""
English as the site writes it: dates as "5 Jan 2026" and times on the 24-hour clock, the way the
pages' own templates do, so that the admin shows them alike. Input formats stay Django's.
"""

DATE_FORMAT = "j M Y"
TIME_FORMAT = "H:i"
DATETIME_FORMAT = "j M Y, H:i"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
