"""Sources: feed reader, Scrapy spiders, politeness and fetch state."""
