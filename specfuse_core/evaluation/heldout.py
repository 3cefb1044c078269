"""The built-in held-out set: 160 short-answer items the quality work never tuned on.

Why a second set: the calibration, the router, the gating threshold and the second-opinion threshold
were all chosen on the dev set (:mod:`.devset`), so a gain measured there can be a gain fitted to
those 160 items. This set asks the same kinds of question with different content: 60 facts and the
instruction questions are new, written for this project (none repeats a dev prompt), and the
arithmetic comes from the dev templates with another seed (new names and numbers, same shapes). The
checkers and the copy rule are the dev set's. Rebuild the file with
``python -m specfuse_core.evaluation.heldout``; use it with ``specfuse eval --dataset heldout``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .devset import InstructionContent, build_items, write_items

HELDOUT_FILE = Path(__file__).parent / "data" / "heldout.jsonl"
HELDOUT_SEED = 20261131  # the first seed after 20261130 whose arithmetic repeats no dev prompt
HELDOUT_PREFIX = "held-"

HELDOUT_FACTS: list[tuple[str, list[str]]] = [
    ("What is the capital of China?", ["Beijing"]),
    ("What is the capital of Mexico?", ["Mexico City"]),
    ("What is the capital of Greece?", ["Athens"]),
    ("What is the capital of Sweden?", ["Stockholm"]),
    ("What is the capital of Argentina?", ["Buenos Aires"]),
    ("What is the capital of Turkey?", ["Ankara"]),
    ("What is the capital of India?", ["New Delhi", "Delhi"]),
    ("What is the capital of Ireland?", ["Dublin"]),
    ("What is the capital of Poland?", ["Warsaw"]),
    ("What is the capital of South Korea?", ["Seoul"]),
    ("What is the capital of Thailand?", ["Bangkok"]),
    ("What is the capital of Peru?", ["Lima"]),
    ("Which planet is famous for its large rings?", ["Saturn"]),
    ("Which planet is the third from the Sun?", ["Earth"]),
    ("What is the chemical symbol for iron?", ["Fe"]),
    ("What is the chemical symbol for silver?", ["Ag"]),
    ("What is the chemical formula of water?", ["H2O", "H₂O"]),
    ("Which gas do humans need to breathe in to stay alive?", ["oxygen"]),
    ("How many planets are there in our solar system?", ["eight", "8"]),
    ("How many weeks are there in a year?", ["52", "fifty-two"]),
    ("How many sides does a pentagon have?", ["five", "5"]),
    ("How many legs does an insect have?", ["six", "6"]),
    ("Who wrote the play Hamlet?", ["Shakespeare"]),
    ("Who painted The Starry Night?", ["Van Gogh", "Gogh"]),
    ("Who wrote the novel 1984?", ["Orwell"]),
    ("Who discovered penicillin?", ["Fleming"]),
    ("Who proposed the theory of evolution by natural selection?", ["Darwin"]),
    ("Who is credited with inventing the telephone?", ["Bell"]),
    ("What is the largest country in the world by area?", ["Russia"]),
    ("What is the longest river in South America?", ["Amazon"]),
    ("What is the largest continent?", ["Asia"]),
    ("What is the smallest continent?", ["Australia", "Oceania"]),
    ("What is the main ingredient of guacamole?", ["avocado", "avocados"]),
    ("What currency is used in the United States?", ["dollar", "dollars", "USD"]),
    ("What currency is used in Germany?", ["euro", "euros"]),
    ("What is the main language spoken in Mexico?", ["Spanish"]),
    ("In which country is the Taj Mahal?", ["India"]),
    ("In which city is the Colosseum?", ["Rome"]),
    ("In which country is Mount Kilimanjaro?", ["Tanzania"]),
    ("Which organs do humans use to breathe?", ["lungs", "lung"]),
    ("Which organ of the body do we think with?", ["brain"]),
    ("How many teeth does an adult human usually have?", ["32", "thirty-two"]),
    ("What is the largest prime number below 10?", ["7", "seven"]),
    ("What is 12 squared?", ["144"]),
    ("How many seconds are there in a minute?", ["60", "sixty"]),
    ("How many days are there in a year that is not a leap year?", ["365"]),
    ("What is the opposite of big?", ["small", "little"]),
    ("What color do you get by mixing red and white?", ["pink"]),
    ("What is the fastest land animal?", ["cheetah"]),
    ("What is the largest bird in the world?", ["ostrich"]),
    ("What does a caterpillar turn into?", ["butterfly", "butterflies", "moth"]),
    ("What is the boiling point of water at sea level in degrees Fahrenheit?", ["212"]),
    ("Which gas makes up most of Earth's atmosphere?", ["nitrogen"]),
    ("What is the center of an atom called?", ["nucleus"]),
    ("What is the hottest planet in our solar system?", ["Venus"]),
    ("Which language is used to style web pages?", ["CSS", "Cascading Style Sheets"]),
    ("What does RAM stand for?", ["random access memory", "random-access memory"]),
    ("What is the past tense of the verb 'eat'?", ["ate"]),
    ("How many strings does a standard guitar have?", ["six", "6"]),
    ("Which ocean lies between Europe and North America?", ["Atlantic"]),
]

HELDOUT_INSTRUCTIONS = InstructionContent(
    yes_no=[
        ("Is the Earth round?", "yes"), ("Is fire cold?", "no"), ("Do birds have feathers?", "yes"),
        ("Is 10 greater than 3?", "yes"), ("Is London in France?", "no"), ("Do fish live in water?", "yes"),
        ("Is 4 an odd number?", "no"), ("Is snow usually white?", "yes"), ("Does a triangle have four sides?", "no"),
        ("Is a dog a plant?", "no"),
    ],
    one_word=[
        ("What color is grass?", ["green"]), ("What is the opposite of left?", ["right"]),
        ("Which animal barks?", ["dog", "dogs"]), ("What is the capital of Austria?", ["Vienna"]),
        ("What do you call a baby cat?", ["kitten"]), ("Which season comes after summer?", ["autumn", "fall"]),
        ("Which day comes after Friday?", ["Saturday"]), ("What color is fresh snow?", ["white"]),
        ("What is the plural of child?", ["children"]), ("What is the opposite of night?", ["day"]),
    ],
    lists=[
        ("three kinds of trees", 3), ("four days of the week", 4), ("three shapes", 3),
        ("five body parts", 5), ("three sea animals", 3), ("four kitchen tools", 4),
        ("three school subjects", 3), ("five vehicles", 5), ("three birds", 3), ("four flowers", 4),
    ],
    numbers=[
        ("How many legs does a cat have?", 4), ("What is 8 plus 7?", 15), ("How many minutes are in half an hour?", 30),
        ("What is 6 times 7?", 42), ("How many wheels does a tricycle have?", 3), ("What is 50 minus 18?", 32),
        ("How many sides does a square have?", 4), ("What is 81 divided by 9?", 9), ("How many eyes does a person have?", 2),
        ("What is 11 plus 11?", 22),
    ],
    words=["table", "yellow", "mountain", "bridge", "pencil", "summer", "rocket", "orange", "castle", "music"],
)


def build_heldout_items() -> list[dict[str, Any]]:
    """All held-out items as JSON-ready dicts, ids prefixed ``held-`` so they never pair with dev ids."""
    return build_items(seed=HELDOUT_SEED, facts=HELDOUT_FACTS, instructions=HELDOUT_INSTRUCTIONS, id_prefix=HELDOUT_PREFIX)


def write_heldout_file(path: Path = HELDOUT_FILE) -> Path:
    return write_items(build_heldout_items(), path)


if __name__ == "__main__":
    print(write_heldout_file())
