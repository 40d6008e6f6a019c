"""The fixed fictional world whose facts the factual queries ask about.

Nothing here depends on a seed: the same entities and facts exist in every generated corpus, so the query set
(data/queries.jsonl) stays valid whatever seed the corpus is generated with.
"""

# Fictional countries: (name, capital, language, currency, continent, main river, population in millions)
COUNTRIES = [
    ("Veloria", "Marn", "Velorian", "drel", "Ostra", "Sella", 12),
    ("Quendor", "Talvik", "Quendish", "kor", "Ostra", "Brane", 8),
    ("Ambrosia", "Lithe", "Ambrosan", "sol", "Meridia", "Caro", 21),
    ("Drakmoor", "Hollin", "Drakish", "mark", "Nordra", "Vell", 5),
    ("Pelagon", "Siren", "Pelagic", "shell", "Meridia", "Osa", 17),
    ("Tarsis", "Kelm", "Tarsian", "tal", "Ostra", "Rhun", 9),
    ("Miravel", "Dunmore", "Miravan", "lune", "Nordra", "Ilse", 14),
    ("Zantor", "Pravik", "Zantic", "zen", "Austra", "Kora", 30),
    ("Orlenia", "Vasse", "Orlen", "ora", "Meridia", "Lenna", 6),
    ("Kestrel", "Brigh", "Kestran", "feather", "Nordra", "Tamm", 3),
    ("Lumeria", "Calder", "Lumeric", "ray", "Austra", "Sova", 25),
    ("Gorvath", "Istren", "Gorvish", "bar", "Ostra", "Dusk", 11),
    ("Selvane", "Morrow", "Selvan", "leaf", "Meridia", "Aven", 7),
    ("Thalor", "Quill", "Thalic", "crown", "Austra", "Merren", 19),
    ("Brevania", "Oskar", "Breve", "pen", "Nordra", "Lisk", 4),
    ("Norvale", "Fenwick", "Norvic", "val", "Ostra", "Tay", 13),
    ("Carthis", "Ebon", "Carthian", "dram", "Austra", "Nile", 22),
    ("Ysolde", "Rimmar", "Ysoldic", "star", "Meridia", "Vey", 2),
    ("Harrowmere", "Glent", "Harrow", "stone", "Nordra", "Wend", 16),
    ("Esmeral", "Tovin", "Esmeran", "pearl", "Austra", "Gall", 10),
]

# Fictional books: (title, author, year)
BOOKS = [
    ("The Glass Orchard", "Anna Pell", 1931),
    ("Winter of Lanterns", "Rafe Odell", 1954),
    ("The Salt Cartographer", "Mira Kesh", 1972),
    ("A House of Small Thunder", "Tobin Vale", 1948),
    ("The Clockmaker's Daughter", "Ilse Varga", 1965),
    ("Songs for a Quiet Harbor", "Dov Amsel", 1983),
    ("The Iron Meadow", "Petra Lund", 1920),
    ("Letters from Kelm", "Oren Saye", 1999),
    ("The Last Cartwright", "Hana Birch", 1977),
    ("Rivers Without Names", "Colm Ardent", 2004),
]

# Fictional inventions: (device, inventor)
INVENTIONS = [
    ("the tidal lamp", "Edda Sorn"),
    ("the wind loom", "Piet Harrow"),
    ("the sky compass", "Lena Marsh"),
    ("the echo bell", "Juno Vance"),
    ("the frost press", "Aldo Quint"),
    ("the sun kettle", "Rosa Emberly"),
]

# Names used only by the factual *control* queries: never mentioned in the corpus (the answer is in the prompt).
CONTROL_COUNTRIES = [
    ("Zembra", "Oltik"), ("Quarnis", "Vell"), ("Ophira", "Dace"), ("Trelleck", "Huma"), ("Wistmar", "Corran"),
    ("Jovania", "Pell"), ("Rhosk", "Amund"), ("Faldris", "Teo"), ("Nimbrel", "Sorrow"), ("Ulvane", "Kiri"),
]


def country_facts():
    """Every country fact as (kind, subject, answer); kind in capital / language / currency."""
    facts = []
    for name, capital, language, currency, *_ in COUNTRIES:
        facts += [("capital", name, capital), ("language", name, language), ("currency", name, currency)]
    return facts


def question_and_answer(kind, subject, answer):
    """The canonical question and answer sentence for one fact (the form the factual queries use)."""
    if kind == "capital":
        return f"What is the capital of {subject}?", f"The capital of {subject} is {answer}."
    if kind == "language":
        return f"What language is spoken in {subject}?", f"The language of {subject} is {answer}."
    if kind == "currency":
        return f"What is the currency of {subject}?", f"The currency of {subject} is the {answer}."
    if kind == "author":
        return f"Who wrote {subject}?", f"{subject} was written by {answer}."
    if kind == "inventor":
        return f"Who invented {subject}?", f"{subject[0].upper() + subject[1:]} was invented by {answer}."
    raise ValueError(kind)


def all_facts():
    """Every queryable fact in the world, in a fixed order."""
    facts = country_facts()
    facts += [("author", title, author) for title, author, _ in BOOKS]
    facts += [("inventor", device, inventor) for device, inventor in INVENTIONS]
    return facts
