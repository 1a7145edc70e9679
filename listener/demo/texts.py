"""Phrase banks the demo world assembles its mentions from.

Texts are built from parts (opener, problem, closer, tag) so that hundreds of
crisis posts read like different people wrote them, and so that a matcher or
a dedup step cannot pass the demo by treating them as one repeated string.
The complaints are blunt on purpose: the demo shows the pipeline, and the
sentiment model is trained on tweets, where anger is spelled out.

Every name here is invented: "Zephyro Fiber" (a home internet provider),
"Velmora Air" (an airline), the town of Zephyroville and its neighbourhoods.
"""

from __future__ import annotations

__all__ = [
    "AREAS",
    "BRAND",
    "CHATTER",
    "CRISIS_CLOSERS",
    "CRISIS_CONFUSED",
    "CRISIS_NEWS",
    "CRISIS_OPENERS",
    "CRISIS_PROBLEMS",
    "CRISIS_REVIEWS",
    "CRISIS_TAGS",
    "FIRST_NAMES",
    "HANDLE_HEADS",
    "HANDLE_TAILS",
    "HIRING",
    "HOSTILE",
    "LAST_NAMES",
    "OTHER_BRAND",
    "RECOVERY",
    "VELMORA",
    "ZEPHYRO",
    "ZEPHYRO_NAMES",
]

BRAND = "Zephyro Fiber"
OTHER_BRAND = "Velmora Air"

# Ways people write the brand; all of them are caught by the demo's watch queries.
ZEPHYRO_NAMES = ("Zephyro Fiber", "Zephyro Fiber", "Zephyro", "@ZephyroFiber", "zephyro fiber", "ZEPHYRO")

AREAS = ("Eastgate", "Millbrook", "Harbor Point", "Old Mill", "Cedar Flats", "Northbank", "Glenhollow")

# Steady-state mentions of the brand, by tone. `{b}` is a brand spelling, `{a}` an area.
ZEPHYRO: dict[str, tuple[str, ...]] = {
    "positive": (
        "Just got {b} installed, 900 down and rock solid so far. Really happy with it!",
        "Shoutout to {b} support, they fixed my router in ten minutes. Great service!",
        "Switched to {b} last month and my video calls are so much smoother now. Love it!",
        "{b} gigabit is honestly great, my gaming ping dropped to 9ms. Amazing.",
        "Loving the new {b} mesh wifi, the signal finally reaches the garden. Thank you!",
        "The {b} technician was friendly and super quick. Excellent install, highly recommend.",
        "Two years with {b} in {a}, rock solid the whole time. Best internet I have had!",
        "{b} upgraded my plan for free today. Nice surprise, thanks!",
    ),
    "neutral": (
        "Does {b} offer static IP addresses on the home plan?",
        "Moving to {a} next month, how long does a {b} install usually take?",
        "{b} is adding new plans for {a} residents according to their website.",
        "Comparing {b} and cable options for a small office, any experiences?",
        "The {b} technician is coming Thursday between 8 and 12.",
        "Which router do you use with {b}? Thinking about replacing the stock one.",
        "{b} published its maintenance schedule for {a} this month.",
        "Is the {b} 500 plan enough for a family of four?",
    ),
    "negative": (
        "{b} wifi dropped twice tonight, really annoying.",
        "Waited 40 minutes on hold with {b} today. Awful.",
        "{b} raised my price again without telling me. So disappointed.",
        "My {b} router keeps rebooting itself. Frustrating.",
    ),
}

# A second brand, so every mention has to be routed to the right one.
VELMORA: dict[str, tuple[str, ...]] = {
    "positive": (
        "Smooth flight with Velmora Air today, the crew was lovely!",
        "Velmora Air upgraded me to an aisle seat for free. Great airline.",
        "Landed early with Velmora Air, best flight I've had this year.",
    ),
    "neutral": (
        "Does Velmora Air allow two carry-ons on the basic fare?",
        "Velmora Air is adding a route from Harbor Point next spring.",
        "Booking Velmora Air for the holidays, which seats have the most legroom?",
    ),
    "negative": (
        "Velmora Air lost my bag again. Unbelievable.",
        "Two hour delay on Velmora Air and no explanation. Terrible.",
    ),
}

# Unrelated chatter, including word-boundary traps: Zephyroville, zephyr, Zephyros.
CHATTER = (
    "Zephyroville farmers market is on this weekend, the peach stand is back!",
    "Traffic on the Zephyroville bridge is backed up again this morning.",
    "A warm zephyr through the garden this evening, perfect weather.",
    "Reading about Zephyros, the Greek god of the west wind. Great myths.",
    "Anyone have a good sourdough recipe? Mine keeps coming out flat.",
    "The {a} library is extending its weekend opening hours.",
    "Zephyroville high school won the regional robotics final!",
    "Road works on {a} high street until Friday, plan ahead.",
    "New ramen place opened in {a}, the broth is fantastic.",
)

# Mentions of the brand that the demo's `NOT` clause excludes.
HIRING = (
    "Zephyro Fiber is hiring field technicians in {a}, job opening link in bio.",
    "Job opening: Zephyro Fiber customer care team lead, hiring now in {a}.",
)

CRISIS_OPENERS = (
    "{b} has been down for {h} hours",
    "{b} internet is completely dead in {a}",
    "No internet AGAIN from {b}, this is awful",
    "Third {b} outage this week",
    "{b} outage in {a} since this morning",
    "{b} is down and my whole street is offline",
    "Still no connection from {b}",
    "{b} billing charged me twice this month",
    "{b} down again in {a}",
    "Worst outage ever from {b}",
)

CRISIS_PROBLEMS = (
    "and support keeps hanging up on me",
    "and the status page says everything is fine",
    "and I work from home, I am losing money",
    "and they still charged me for the full month",
    "and the support chat bot just loops forever",
    "and nobody will give me an ETA",
    "and I was double billed on top of it",
    "and the refund line is closed",
    "and their phone line has a 3 hour wait",
    "and the technician never showed up",
)

CRISIS_CLOSERS = (
    "Absolutely unacceptable.",
    "Worst provider I have ever had.",
    "I am cancelling, this is horrible.",
    "Furious.",
    "Never again, awful company.",
    "Done with this awful company.",
    "So angry right now.",
    "Horrible, just horrible.",
    "Terrible service.",
    "Disgusting way to treat customers.",
    "I hate this.",
    "Pathetic.",
)

CRISIS_TAGS = ("", "", " #ZephyroDown", " #ZephyroFiber", " @ZephyroFiber", " #outage", " 😡", " 🤬")

CRISIS_CONFUSED = (
    "Is {b} down for everyone or just me? The router light is blinking orange.",
    "Has {b} posted an update about the outage in {a} yet?",
    "{b} status page now lists maintenance in {a}, no time given.",
    "Does anyone know the {b} outage number for {a}?",
)

# (title, body) news articles about the crisis.
CRISIS_NEWS = (
    (
        "Zephyro Fiber outage leaves thousands offline in {a}",
        "Customers of Zephyro Fiber report a widespread outage. Many say support lines are "
        "overwhelmed and calls are dropped. Angry customers are demanding refunds.",
    ),
    (
        "Zephyro Fiber customers furious over outage and double billing",
        "Hours into the Zephyro Fiber outage, customers also report being charged twice. "
        "The company has not explained the failure. Complaints keep rising.",
    ),
)

# One wire story picked up by several outlets, each adding its own dateline and footer:
# the demo's proof that copies of one article are grouped into one story.
SYNDICATED_STORY = (
    "Zephyro Fiber confirms core network failure, promises bill credits",
    "Zephyro Fiber confirmed that a failure in its core network left customers in {a} and "
    "neighbouring towns without internet for most of the day. The company said engineers had "
    "isolated the fault and that affected customers would receive credits on their next bill. "
    "Customers said support lines were overwhelmed and some reported being charged twice.",
)
SYNDICATION_OUTLETS = (
    "Metro Wire",
    "Harbor Point Herald",
    "Cedar Flats Courier",
    "Northbank Gazette",
    "Valley Daily",
    "The Glenhollow Post",
)

CRISIS_REVIEWS = (
    "Down for hours, support hung up on me twice. Awful, avoid Zephyro Fiber.",
    "Zephyro Fiber outage all day and they billed me double. Terrible, one star is too many.",
    "Terrible. No internet, no answers, no refund. Zephyro Fiber is a disaster.",
    "Cancelled Zephyro Fiber today. Worst customer service I have ever dealt with.",
)

RECOVERY = (
    ("positive", "{b} is back up for me in {a}, finally! Thanks to the field crews."),
    ("positive", "Internet is back, {b} speeds look normal again. Phew!"),
    ("neutral", "{b} says the outage in {a} is resolved and credits will follow."),
    ("negative", "{b} is back but I'm still angry about the double billing. Terrible."),
    ("neutral", "Anyone from {a} still offline after the {b} fix?"),
)

# Text that must be escaped wherever it ends up: HTML pages, Slack mrkdwn, logs.
HOSTILE = (
    "@channel <!here> {b} is DOWN again, wake up your NOC <script>alert('pwned')</script>",
    "{b} refund? <https://example.com/win|Click here to claim> *urgent* _now_ & furious",
    "{b} broke my connection <img src=x onerror=alert(1)> and support is useless. Terrible.",
)

HANDLE_HEADS = (
    "quiet",
    "maple",
    "lunar",
    "copper",
    "velvet",
    "rusty",
    "sunny",
    "mossy",
    "brisk",
    "amber",
    "pixel",
    "salty",
    "urban",
    "misty",
    "bold",
    "crimson",
    "dusty",
    "frosty",
)
HANDLE_TAILS = (
    "falcon",
    "otter",
    "kettle",
    "meadow",
    "rider",
    "fox",
    "lantern",
    "biscuit",
    "harbor",
    "pine",
    "gecko",
    "comet",
    "badger",
    "willow",
    "sparrow",
    "tiger",
)
FIRST_NAMES = (
    "Dana",
    "Priya",
    "Marcus",
    "Ingrid",
    "Tomas",
    "Aisha",
    "Lena",
    "Kofi",
    "Mira",
    "Jonah",
    "Sofia",
    "Ravi",
    "Elena",
    "Noah",
    "Yuki",
    "Farah",
)
LAST_NAMES = (
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Haddad",
    "Petrov",
    "Castillo",
    "Brennan",
    "Nakamura",
    "Osei",
    "Varga",
)
