"""Unrelated documents: filler text with no reasoning procedure and no queried fact, in every source."""
from data.docs_facts import random_name

ANIMALS = ["heron", "otter", "badger", "lynx", "falcon", "beetle", "salmon", "moth", "tortoise", "wren"]
FOODS = ["barley soup", "plum cake", "bean stew", "rye bread", "apple tart", "onion pie", "rice pudding"]
TOPICS = ["gardening", "cycling", "pottery", "chess", "birdwatching", "baking", "sailing", "knitting"]
WEATHER = ["rain", "fog", "sunshine", "wind", "snow", "hail"]
FIELDS = ["graph neural networks", "protein folding", "sparse attention", "ocean currents", "galaxy surveys",
          "soil chemistry", "speech recognition"]


def wiki_animal(rng):
    animal, name = rng.choice(ANIMALS), random_name(rng)
    return (f"{name} {animal}\n\nThe {name} {animal} is a species of {animal} found near lakes and forests. "
            f"It feeds mostly at {rng.choice(['dawn', 'dusk', 'night'])} and lives for about "
            f"{rng.randint(3, 40)} years. Its numbers are {rng.choice(['stable', 'declining', 'growing'])}.")


def wiki_town(rng):
    town, region = random_name(rng), random_name(rng)
    return (f"{town}\n\n{town} is a small town in the region of {region}. It is known for its "
            f"{rng.choice(['market', 'bridge', 'harbor', 'library', 'festival'])} and its "
            f"{rng.choice(FOODS)}. The town was first mentioned in old records.")


def web_recipe(rng):
    food = rng.choice(FOODS)
    steps = rng.sample(["Wash the vegetables.", "Heat the oven.", "Mix the flour and water.", "Add a pinch of salt.",
                        "Stir gently.", "Let it rest for an hour.", "Serve warm.", "Chop the herbs."], 4)
    return f"How to make {food}\n\n" + " ".join(steps) + f" Enjoy your {food} with friends."


def web_blog(rng):
    topic = rng.choice(TOPICS)
    return (f"This week in {topic}: I finally found some time for {topic} again. The {rng.choice(WEATHER)} kept me "
            f"indoors on Saturday, so I read about {topic} instead. Next week I want to try something new, maybe with "
            f"my friend {random_name(rng)}. Let me know in the comments what you think.")


def web_weather(rng):
    place = random_name(rng)
    return (f"Weather for {place}: expect {rng.choice(WEATHER)} in the morning and {rng.choice(WEATHER)} later in "
            f"the day. Winds from the {rng.choice(['north', 'south', 'east', 'west'])}.")


def code_python(rng):
    name = rng.choice(["clean_names", "count_words", "unique_items", "longest_line"])
    body = {
        "clean_names": "def clean_names(names):\n    return [n.strip().title() for n in names if n.strip()]",
        "count_words": "def count_words(text):\n    counts = {}\n    for w in text.split():\n"
                       "        counts[w] = counts.get(w, 0) + 1\n    return counts",
        "unique_items": "def unique_items(items):\n    seen = set()\n    out = []\n    for it in items:\n"
                        "        if it not in seen:\n            seen.add(it)\n            out.append(it)\n    return out",
        "longest_line": "def longest_line(path):\n    with open(path) as f:\n        return max(f, key=len)",
    }[name]
    return f"# utility: {name.replace('_', ' ')}\n{body}\n"


def code_js(rng):
    name = rng.choice(["capitalize", "debounce", "sumArray"])
    body = {
        "capitalize": "function capitalize(s) {\n  return s.charAt(0).toUpperCase() + s.slice(1);\n}",
        "debounce": "function debounce(fn, ms) {\n  let t;\n  return (...args) => {\n    clearTimeout(t);\n"
                    "    t = setTimeout(() => fn(...args), ms);\n  };\n}",
        "sumArray": "const sumArray = (xs) => xs.reduce((a, b) => a + b, 0);",
    }[name]
    return f"// {name}\n{body}\nmodule.exports = {{ {name} }};"


def stackexchange_misc(rng):
    q = rng.choice([
        ("How do I undo the last git commit?", "Use git reset --soft HEAD~1 to keep your changes staged."),
        ("Why is my bread dense?", "The dough probably did not rise long enough. Give it more time in a warm place."),
        ("How do I center a div?", "Use a flex container with justify-content and align-items set to center."),
        ("What is a good first bird to watch?", "Start with the common garden birds near a feeder."),
        ("How do I rename a file in Python?", "Call os.rename with the old and the new path."),
    ])
    return f"Title: {q[0]}\n\nQuestion: {q[0]} I tried a few things already.\n\nAnswer: {q[1]}"


def arxiv_abstract(rng):
    field = rng.choice(FIELDS)
    return (f"# A study of {field}\n\n**Abstract.** We study {field} with a new method based on "
            f"{rng.choice(['sampling', 'kernels', 'spectral analysis', 'message passing'])}. On "
            f"{rng.randint(2, 9)} benchmarks the method improves over strong baselines. The loss is "
            f"$\\mathcal{{L}} = \\sum_i \\ell(f(x_i), y_i)$ and we minimise it with gradient descent.")


def multilingual_misc(rng):
    return rng.choice([
        f"Aujourd'hui il fait beau à {random_name(rng)}. Nous allons au marché acheter du pain.",
        f"Hoy vamos a la playa de {random_name(rng)} con mis amigos. El agua está fría.",
        f"Heute regnet es in {random_name(rng)}. Wir bleiben zu Hause und lesen ein Buch.",
    ])
