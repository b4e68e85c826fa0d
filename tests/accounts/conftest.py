import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """
    Forget what earlier tests counted in the cache.

    allauth counts sign-in failures and confirmation mails there (one mail to an address every
    three minutes), and the tests share one in-process cache.
    """
    cache.clear()
    yield
    cache.clear()
