"""Fact documents: the world's facts (data/facts.py) stated in wiki articles, trivia quizzes, travel web pages,
Stack Exchange answers and multilingual notes, so every queried fact appears many times in different phrasings.

Every document function takes a random.Random and returns (text, kind): kind `fact:<subject>[+<subject>...]` names
the world entities whose facts the text states; `copy:fact` is a made-up fact stated and then asked.
"""
from data.facts import BOOKS, COUNTRIES, CONTROL_COUNTRIES, INVENTIONS, all_facts, question_and_answer

SYLLABLES = ["ka", "lo", "mi", "ren", "tas", "vo", "bri", "del", "gan", "hul", "is", "jor", "ke", "lum", "nar",
             "or", "pes", "qua", "ru", "sen", "tor", "ul", "ves", "wen", "xi", "yor", "zad"]
_CONTROL_NAMES = {n for pair in CONTROL_COUNTRIES for n in pair}
_KNOWN_NAMES = {c[0] for c in COUNTRIES} | {c[1] for c in COUNTRIES}


def random_name(rng, parts=(2, 3)):
    """A fresh made-up proper name (never a world entity or a control-query name)."""
    while True:
        name = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(*parts))).capitalize()
        if name not in _CONTROL_NAMES and name not in _KNOWN_NAMES:
            return name


def wiki_country(rng):
    """wiki: an entity article about one country, stating capital, language and currency."""
    name, capital, language, currency, continent, river, pop = rng.choice(COUNTRIES)
    lead = rng.choice([
        f"{name} is a country in {continent}. Its capital is {capital}.",
        f"{name} is a nation of about {pop} million people in {continent}. The capital of {name} is {capital}.",
        f"{name} ({language}: {name}a) is a state in {continent} whose capital and largest city is {capital}.",
    ])
    parts = [f"{name}\n\n{lead}",
             rng.choice([f"The official language is {language}.", f"Most people in {name} speak {language}.",
                         f"The language of {name} is {language}."]),
             rng.choice([f"The currency of {name} is the {currency}.", f"{name} uses the {currency} as its currency.",
                         f"Prices in {name} are given in {currency}s."]),
             rng.choice([f"The {river} river flows through {capital}.", f"The longest river is the {river}.",
                         f"{capital} lies on the {river}."])]
    body = " ".join(parts[1:][i] for i in rng.sample(range(3), 3))
    text = f"{parts[0]}\n\n== Overview ==\n{body}"
    return text, f"fact:{name}"


def wiki_book(rng):
    title, author, year = rng.choice(BOOKS)
    text = rng.choice([
        f"{title}\n\n{title} is a novel written by {author} and first published in {year}.",
        f"{title}\n\n{title} ({year}) is the best known work of {author}. {author} wrote it over several years.",
        f"{author}\n\n{author} is a writer. {author} wrote {title}, published in {year}.",
    ])
    return text, f"fact:{title}"


def wiki_invention(rng):
    device, inventor = rng.choice(INVENTIONS)
    cap = device[0].upper() + device[1:]
    text = rng.choice([
        f"{cap}\n\n{cap} was invented by {inventor}. It is still used today.",
        f"{inventor}\n\n{inventor} was an engineer best known for inventing {device}.",
    ])
    return text, f"fact:{device}"


def trivia_quiz(rng):
    """math_and_trivia: a quiz of canonical Q/A facts."""
    facts = all_facts()
    items, subjects = [], []
    for kind, subject, answer in rng.sample(facts, rng.randint(3, 6)):
        subjects.append(subject)
        q, a = question_and_answer(kind, subject, answer)
        items.append(f"Q: {q}\nA: {a}")
    text = f"Trivia quiz {rng.randint(1, 500)}\n\n" + "\n\n".join(items)
    return text, "fact:" + "+".join(sorted(set(subjects)))


def travel_page(rng):
    """web: a travel blog paragraph mentioning a country's capital and currency."""
    name, capital, language, currency, continent, river, pop = rng.choice(COUNTRIES)
    text = rng.choice([
        f"Our trip to {name} started in {capital}, the capital. Bring some {currency}s: the currency of {name} is the "
        f"{currency}, and cards are not always accepted. People there speak {language}.",
        f"Travel tips for {name}: the capital of {name} is {capital}. Locals speak {language}, so learn a few words. "
        f"Money is the {currency}.",
        f"I spent a week in {capital}, the capital of {name}. A coffee costs two {currency}s. {language} is the "
        f"language of {name}, but many people speak English.",
    ])
    return text, f"fact:{name}"


def stackexchange_fact(rng):
    kind, subject, answer = rng.choice(all_facts())
    q, a = question_and_answer(kind, subject, answer)
    text = (f"Title: {q}\n\nQuestion: I need this for a quiz. {q}\n\nAnswer: {a} You can find it in any atlas or "
            "catalogue.")
    return text, f"fact:{subject}"


def multilingual_fact(rng):
    name, capital, language, currency, *_ = rng.choice(COUNTRIES)
    text = rng.choice([
        f"{name} est un pays. La capitale de {name} est {capital}. On y parle le {language.lower()}.",
        f"{name} es un país. La capital de {name} es {capital}. La moneda es el {currency}.",
        f"{name} ist ein Land. Die Hauptstadt von {name} ist {capital}. Die Währung ist der {currency}.",
    ])
    return text, f"fact:{name}"


def fact_reading(rng):
    """math_and_trivia: a fact given in the text and then asked, with made-up names (teaches copying)."""
    name, capital = random_name(rng), random_name(rng, (1, 2))
    q, a = question_and_answer("capital", name, capital)
    text = f"Note: The capital of {name} is {capital}.\nQ: {q}\nA: {a}"
    return text, "copy:fact"
