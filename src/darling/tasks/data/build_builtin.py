"""Write the built-in open-ended verifiable task: ``data/builtin_{train,heldout}.jsonl``.

    python -m darling.tasks.data.build_builtin [--out DIR]

Each category is a question with many correct answers ("Name a planet of the solar system"), so
quality-only RL can collapse onto one answer while diversity-aware RL should keep several.
Each category has two phrasings; each phrasing gets an answer-format suffix chosen by a hash of
its id. In the table below, answer entries are separated by ``"; "``; an entry
``"United States|USA"`` is a canonical answer followed by its aliases.

Split: category-disjoint. Knowledge and number categories are split separately; in each, the
categories are ordered by ``sha256(f"{SEED}:{name}")`` and the first ``HELDOUT_SHARE`` of them
(rounded half up) are held out. Running this again reproduces the files byte for byte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from darling.tasks.data.builder import build_main, write_jsonl

SEED = 2509
HELDOUT_SHARE = 0.25
NAME_SUFFIXES = (
    "Answer with just the name.",
    "Reply with the name only.",
    "Give only the name, nothing else.",
    "Keep it short: just the name.",
)
NUMBER_SUFFIXES = (
    "Answer with just the number.",
    "Reply with the number only.",
    "Give only the number, nothing else.",
)
ALIAS_SEPARATOR = "|"
ENTRY_SEPARATOR = "; "


@dataclass(frozen=True)
class Category:
    """A question family: its phrasings (without suffix) and accepted answers."""

    name: str
    stems: tuple[str, ...]
    answers: tuple[str, ...]
    numeric: bool = False


def _numbers(low: int, high: int, keep: Callable[[int], bool]) -> tuple[str, ...]:
    return tuple(str(k) for k in range(low, high + 1) if keep(k))


def _is_prime(k: int) -> bool:
    return k > 1 and all(k % d for d in range(2, int(k**0.5) + 1))


def _k(name: str, stems: Sequence[str], answers: str) -> Category:
    """A knowledge category; ``answers`` holds entries separated by ``ENTRY_SEPARATOR``."""
    return Category(name, tuple(stems), tuple(answers.split(ENTRY_SEPARATOR)))


def _n(name: str, stems: Sequence[str], answers: tuple[str, ...]) -> Category:
    return Category(name, tuple(stems), answers, numeric=True)


# fmt: off
CATEGORIES = (
    _k("planets",
       ["Name a planet of the solar system.", "Name one of the eight planets that orbit the Sun."],
       "Mercury; Venus; Earth; Mars; Jupiter; Saturn; Uranus; Neptune"),
    _k("continents",
       ["Name a continent.", "Name one of the seven continents."],
       "Africa; Antarctica; Asia; Australia|Oceania; Europe; North America; South America"),
    _k("oceans",
       ["Name an ocean.", "Name one of the Earth's oceans."],
       "Pacific Ocean|Pacific; Atlantic Ocean|Atlantic; Indian Ocean|Indian; Arctic Ocean|Arctic; "
       "Southern Ocean|Southern|Antarctic Ocean"),
    _k("rainbow_colours",
       ["Name a color of the rainbow.", "Name one of the seven colors of a rainbow."],
       "Red; Orange; Yellow; Green; Blue; Indigo; Violet|Purple"),
    _k("primary_colours",
       ["Name one of the three primary colors used in painting.",
        "Name a traditional primary color."],
       "Red; Yellow; Blue"),
    _k("weekdays",
       ["Name a day of the week.", "Name one of the seven days of the week."],
       "Monday; Tuesday; Wednesday; Thursday; Friday; Saturday; Sunday"),
    _k("months_31_days",
       ["Name a month that has 31 days.", "Name a month of the year with exactly 31 days."],
       "January; March; May; July; August; October; December"),
    _k("seasons",
       ["Name one of the four seasons of the year.", "Name a season."],
       "Spring; Summer; Autumn|Fall; Winter"),
    _k("noble_gases",
       ["Name a noble gas.", "Name a chemical element that is a noble gas."],
       "Helium; Neon; Argon; Krypton; Xenon; Radon; Oganesson"),
    _k("alkali_metals",
       ["Name an alkali metal.", "Name a chemical element in the alkali metal group."],
       "Lithium; Sodium; Potassium; Rubidium; Caesium|Cesium; Francium"),
    _k("states_of_matter",
       ["Name a state of matter.", "Name one of the states in which matter can exist."],
       "Solid; Liquid; Gas; Plasma; Bose-Einstein condensate"),
    _k("south_american_countries",
       ["Name a country in South America.", "Name a South American country."],
       "Argentina; Bolivia; Brazil|Brasil; Chile; Colombia; Ecuador; Guyana; Paraguay; Peru; "
       "Suriname|Surinam; Uruguay; Venezuela"),
    _k("african_countries",
       ["Name a country in Africa.", "Name an African country."],
       "Algeria; Angola; Benin; Botswana; Burkina Faso; Burundi; Cape Verde|Cabo Verde; Cameroon; "
       "Central African Republic; Chad; Comoros; "
       "Democratic Republic of the Congo|DR Congo|DRC|Congo-Kinshasa; "
       "Republic of the Congo|Congo|Congo-Brazzaville; Djibouti; Egypt; Equatorial Guinea; "
       "Eritrea; Eswatini|Swaziland; Ethiopia; Gabon; Gambia; Ghana; Guinea; Guinea-Bissau; "
       "Ivory Coast|Côte d'Ivoire; Kenya; Lesotho; Liberia; Libya; Madagascar; Malawi; Mali; "
       "Mauritania; Mauritius; Morocco; Mozambique; Namibia; Niger; Nigeria; Rwanda; "
       "São Tomé and Príncipe; Senegal; Seychelles; Sierra Leone; Somalia; South Africa; "
       "South Sudan; Sudan; Tanzania; Togo; Tunisia; Uganda; Zambia; Zimbabwe"),
    _k("eu_countries",
       ["Name a member state of the European Union.",
        "Name a country that belongs to the European Union."],
       "Austria; Belgium; Bulgaria; Croatia; Cyprus; Czech Republic|Czechia; Denmark; Estonia; "
       "Finland; France; Germany; Greece; Hungary; Ireland|Republic of Ireland; Italy; Latvia; "
       "Lithuania; Luxembourg; Malta; Netherlands|Holland; Poland; Portugal; Romania; Slovakia; "
       "Slovenia; Spain; Sweden"),
    _k("nordic_countries",
       ["Name a Nordic country.", "Name one of the Nordic countries of northern Europe."],
       "Denmark; Finland; Iceland; Norway; Sweden"),
    _k("germany_neighbours",
       ["Name a country that shares a land border with Germany.",
        "Name a neighbouring country of Germany."],
       "Denmark; Poland; Czech Republic|Czechia; Austria; Switzerland; France; Luxembourg; "
       "Belgium; Netherlands|Holland"),
    _k("spanish_speaking_countries",
       ["Name a country where Spanish is an official language.",
        "Name a Spanish-speaking country."],
       "Spain; Mexico; Colombia; Argentina; Peru; Venezuela; Chile; Ecuador; Guatemala; Cuba; "
       "Bolivia; Dominican Republic; Honduras; Paraguay; El Salvador; Nicaragua; Costa Rica; "
       "Panama; Uruguay; Equatorial Guinea"),
    _k("us_states_bordering_canada",
       ["Name a US state that borders Canada.",
        "Name a state of the United States that shares a border with Canada."],
       "Alaska; Washington|Washington State; Idaho; Montana; North Dakota; Minnesota; Michigan; "
       "Ohio; Pennsylvania; New York|New York State; Vermont; New Hampshire; Maine"),
    _k("great_lakes",
       ["Name one of the Great Lakes of North America.", "Name a Great Lake."],
       "Lake Superior|Superior; Lake Michigan|Michigan; Lake Huron|Huron; Lake Erie|Erie; "
       "Lake Ontario|Ontario"),
    _k("canadian_provinces",
       ["Name a province of Canada.", "Name a Canadian province."],
       "Alberta; British Columbia; Manitoba; New Brunswick; "
       "Newfoundland and Labrador|Newfoundland; Nova Scotia; Ontario; Prince Edward Island; "
       "Quebec; Saskatchewan"),
    _k("g7_countries",
       ["Name a member country of the G7.", "Name one of the Group of Seven (G7) countries."],
       "Canada; France; Germany; Italy; Japan; United Kingdom|UK|U.K.|Britain|Great Britain; "
       "United States|USA|U.S.|United States of America|America"),
    _k("un_permanent_members",
       ["Name a permanent member of the UN Security Council.",
        "Name one of the five permanent members of the United Nations Security Council."],
       "China|People's Republic of China; France; Russia|Russian Federation; "
       "United Kingdom|UK|U.K.|Britain|Great Britain; "
       "United States|USA|U.S.|United States of America|America"),
    _k("summer_olympic_hosts",
       ["Name a city that has hosted the Summer Olympic Games.",
        "Name a host city of the Summer Olympics."],
       "Athens; Paris; St. Louis|Saint Louis; London; Stockholm; Antwerp; Amsterdam; Los Angeles; "
       "Berlin; Helsinki; Melbourne; Rome; Tokyo; Mexico City; Munich; Montreal; Moscow; Seoul; "
       "Barcelona; Atlanta; Sydney; Beijing; Rio de Janeiro|Rio"),
    _k("ancient_wonders",
       ["Name one of the Seven Wonders of the Ancient World.",
        "Name an ancient wonder of the world from the classical list of seven."],
       "Great Pyramid of Giza|Pyramids of Giza|Pyramid of Giza|Great Pyramid|Giza pyramids; "
       "Hanging Gardens of Babylon|Hanging Gardens; Statue of Zeus at Olympia|Statue of Zeus; "
       "Temple of Artemis at Ephesus|Temple of Artemis; "
       "Mausoleum at Halicarnassus|Mausoleum of Halicarnassus; Colossus of Rhodes|Colossus; "
       "Lighthouse of Alexandria|Pharos of Alexandria|Pharos"),
    _k("chess_pieces",
       ["Name a chess piece.", "Name one of the pieces used in a game of chess."],
       "King; Queen; Rook|Castle; Bishop; Knight; Pawn"),
    _k("card_suits",
       ["Name a suit in a standard deck of playing cards.",
        "Name one of the four suits of playing cards."],
       "Hearts|Heart; Diamonds|Diamond; Clubs|Club; Spades|Spade"),
    _k("hogwarts_houses",
       ["Name a Hogwarts house from Harry Potter.",
        "Name one of the four houses of Hogwarts School."],
       "Gryffindor; Hufflepuff; Ravenclaw; Slytherin"),
    _k("ninja_turtles",
       ["Name one of the Teenage Mutant Ninja Turtles.",
        "Name a turtle from the Teenage Mutant Ninja Turtles."],
       "Leonardo|Leo; Michelangelo|Mikey|Michaelangelo; Donatello|Donnie; Raphael|Raph"),
    _k("santas_reindeer",
       ["Name one of Santa Claus's reindeer.", "Name a reindeer that pulls Santa's sleigh."],
       "Dasher; Dancer; Prancer; Vixen; Comet; Cupid; Donner|Donder; Blitzen; Rudolph"),
    _k("shakespeare_plays",
       ["Name a play by William Shakespeare.", "Name a play written by Shakespeare."],
       "All's Well That Ends Well; Antony and Cleopatra; As You Like It; The Comedy of Errors; "
       "Coriolanus; Cymbeline; Hamlet; Henry IV; Henry IV Part 1; Henry IV Part 2; Henry V; "
       "Henry VI; Henry VI Part 1; Henry VI Part 2; Henry VI Part 3; Henry VIII; Edward III; "
       "Julius Caesar; King John; King Lear; Love's Labour's Lost|Love's Labor's Lost; Macbeth; "
       "Measure for Measure; The Merchant of Venice; The Merry Wives of Windsor; "
       "A Midsummer Night's Dream; Much Ado About Nothing; Othello; "
       "Pericles|Pericles, Prince of Tyre; Richard II; Richard III; Romeo and Juliet; "
       "The Taming of the Shrew; The Tempest; Timon of Athens; Titus Andronicus; "
       "Troilus and Cressida; Twelfth Night; The Two Gentlemen of Verona; The Two Noble Kinsmen; "
       "The Winter's Tale"),
    _k("greek_letters",
       ["Name a letter of the Greek alphabet.", "Name a Greek letter."],
       "Alpha; Beta; Gamma; Delta; Epsilon; Zeta; Eta; Theta; Iota; Kappa; Lambda; Mu; Nu; Xi; "
       "Omicron; Pi; Rho; Sigma; Tau; Upsilon; Phi; Chi; Psi; Omega"),
    _k("roman_gods",
       ["Name a god or goddess of ancient Roman religion.", "Name a Roman god or goddess."],
       "Jupiter; Juno; Neptune; Pluto|Dis Pater; Mars; Venus; Minerva; Apollo; Diana; Mercury; "
       "Vulcan; Vesta; Ceres; Bacchus|Liber; Janus; Cupid|Amor; Saturn; Aurora; Fortuna; Faunus; "
       "Quirinus; Bellona; Terminus; Sol|Sol Invictus; Luna; Proserpina; Flora; Pomona; Victoria; "
       "Juventas; Tellus|Terra; Orcus"),
    _k("norse_gods",
       ["Name a god or goddess from Norse mythology.", "Name a Norse god or goddess."],
       "Odin|Othin; Thor; Loki; Freyja|Freya; Frigg|Frigga; Baldr|Balder|Baldur; Tyr; "
       "Heimdall|Heimdallr; Freyr|Frey; Njord|Njordr; Idun|Idunn; Bragi; Vidar|Vidarr; Vali; "
       "Hodr|Hod|Hoder; Hel; Ullr|Ull; Skadi; Sif; Forseti; Nanna; Ran; Aegir; Hermod; Mimir; "
       "Sigyn; Eir; Gefjon|Gefion; Jord"),
    _k("zodiac_signs",
       ["Name a sign of the Western zodiac.", "Name an astrological star sign."],
       "Aries; Taurus; Gemini; Cancer; Leo; Virgo; Libra; Scorpio; Sagittarius; Capricorn; "
       "Aquarius; Pisces"),
    _k("chinese_zodiac",
       ["Name an animal of the Chinese zodiac.",
        "Name one of the twelve animals of the Chinese zodiac."],
       "Rat; Ox; Tiger; Rabbit; Dragon; Snake; Horse; Goat|Sheep|Ram; Monkey; Rooster|Chicken; "
       "Dog; Pig|Boar"),
    _k("platonic_solids",
       ["Name a Platonic solid.", "Name one of the five regular convex polyhedra."],
       "Tetrahedron; Cube|Hexahedron; Octahedron; Dodecahedron; Icosahedron"),
    _k("five_senses",
       ["Name one of the five traditional human senses.", "Name one of the five senses."],
       "Sight|Vision|Seeing; Hearing; Smell|Olfaction; Taste|Gustation; Touch"),
    _k("human_organs",
       ["Name an organ of the human body.", "Name an organ found in the human body."],
       "Heart; Lung; Liver; Kidney; Brain; Stomach; Skin; Pancreas; Spleen; Small intestine; "
       "Large intestine|Colon; Intestine|Intestines|Gut|Bowel; Bladder|Urinary bladder; "
       "Gallbladder|Gall bladder; Appendix; Thyroid|Thyroid gland; Esophagus|Oesophagus; Eye; "
       "Ear; Nose; Tongue; Uterus|Womb; Ovary|Ovaries; Testis|Testes|Testicle; "
       "Prostate|Prostate gland; Thymus; Adrenal gland; Pituitary gland; Larynx; Pharynx; "
       "Trachea|Windpipe; Spinal cord; Rectum; Duodenum"),
    _k("string_instruments",
       ["Name a string instrument.",
        "Name a musical instrument whose sound comes from vibrating strings."],
       "Violin|Fiddle; Viola; Cello|Violoncello; "
       "Double bass|Contrabass|Upright bass|String bass|Bass; Guitar; Acoustic guitar; "
       "Electric guitar; Bass guitar|Electric bass; Harp; Banjo; Mandolin; Ukulele; Sitar; Lute; "
       "Zither; Dulcimer; Balalaika; Koto; Erhu; Bouzouki; Lyre; Oud; Shamisen; Pipa; Guzheng; "
       "Hurdy-gurdy; Viola da gamba|Viol; Piano; Harpsichord; Clavichord"),
    _k("brass_instruments",
       ["Name a brass instrument.", "Name a musical instrument from the brass family."],
       "Trumpet; Trombone; French horn|Horn; Tuba; Cornet; Euphonium; Flugelhorn; Sousaphone; "
       "Bugle; Baritone horn|Baritone; Mellophone; Alto horn|Tenor horn; Bass trombone; "
       "Piccolo trumpet; Wagner tuba; Sackbut; Ophicleide"),
    _k("programming_languages",
       ["Name a programming language.", "Name a language used to write computer programs."],
       "Python; Java; C; C++|CPP; C#|C Sharp; Objective-C; JavaScript|JS; TypeScript; Ruby; "
       "Go|Golang; Rust; Swift; Kotlin; PHP; Perl; R; Scala; Haskell; Lisp; Common Lisp; Scheme; "
       "Racket; Clojure; Fortran; COBOL; MATLAB; Julia; Lua; Dart; Pascal; Delphi; Ada; "
       "Assembly|Assembly language|Assembler; SQL; Bash|Shell; PowerShell; Erlang; Elixir; OCaml; "
       "F#; Prolog; BASIC; Visual Basic|VB.NET; Scratch; Groovy; Smalltalk; Zig; Nim; Elm; "
       "Solidity; ALGOL; Simula; APL; Logo"),
    _k("web_browsers",
       ["Name a web browser.", "Name a program people use to browse the web."],
       "Google Chrome|Chrome; Mozilla Firefox|Firefox; Safari; Microsoft Edge|Edge; Opera; "
       "Internet Explorer|IE; Brave; Vivaldi; Chromium; Tor Browser|Tor; Samsung Internet; "
       "Netscape Navigator|Netscape; Mosaic; Arc; UC Browser; Yandex Browser; Konqueror; Lynx; "
       "Maxthon; SeaMonkey; Pale Moon; Waterfox"),
    _k("gemstones",
       ["Name a gemstone.", "Name a precious or semi-precious stone."],
       "Diamond; Ruby; Sapphire; Emerald; Amethyst; Topaz; Opal; Garnet; Pearl; Jade; Aquamarine; "
       "Turquoise; Peridot; Tourmaline; Citrine; Onyx; Lapis lazuli|Lapis; Tanzanite; Moonstone; "
       "Zircon; Jasper; Agate; Alexandrite; Spinel; Morganite; Amber; Quartz; Beryl; "
       "Carnelian; Malachite"),
    _k("deserts",
       ["Name a desert on Earth.", "Name a large desert."],
       "Sahara; Gobi; Kalahari; Atacama; Arabian Desert|Arabian; Mojave|Mohave; Sonoran; Namib; "
       "Great Victoria Desert|Great Victoria; Thar|Great Indian Desert; Chihuahuan; "
       "Great Basin Desert|Great Basin; Taklamakan|Taklimakan; Syrian Desert; "
       "Patagonian Desert|Patagonian; Great Sandy Desert; Gibson Desert; Simpson Desert; "
       "Karakum|Kara Kum; Kyzylkum|Kyzyl Kum; Antarctic Desert|Antarctica|Antarctic; "
       "Arctic Desert|Arctic; Rub' al Khali|Empty Quarter; Negev; Sinai; Danakil"),
    _k("citrus_fruits",
       ["Name a citrus fruit.", "Name a fruit from the citrus family."],
       "Orange; Lemon; Lime; Grapefruit; Tangerine; Mandarin|Mandarin orange; Clementine; "
       "Pomelo|Pummelo|Shaddock; Kumquat; Citron; Yuzu; Blood orange; Satsuma; Bergamot; "
       "Key lime; Kaffir lime|Makrut lime; Ugli fruit; Finger lime; Calamansi|Calamondin; "
       "Tangelo; Meyer lemon; Seville orange|Bitter orange; Navel orange; Valencia orange"),
    _k("marsupials",
       ["Name a marsupial.", "Name an animal that carries its young in a pouch."],
       "Kangaroo; Koala; Wombat; Wallaby; Opossum|Possum; Tasmanian devil; Quokka; Bandicoot; "
       "Bilby; Sugar glider; Numbat; Quoll; Wallaroo; Pademelon; Potoroo; Bettong; Cuscus; "
       "Tree kangaroo; Thylacine|Tasmanian tiger; Dunnart; Antechinus"),
    _k("flightless_birds",
       ["Name a bird that cannot fly.", "Name a flightless bird."],
       "Penguin; Ostrich; Emu; Kiwi; Cassowary; Rhea; Dodo; Kakapo; Takahe; "
       "Flightless cormorant|Galapagos cormorant; Steamer duck; Moa; Elephant bird; Great auk; "
       "Weka"),
    _k("big_cats",
       ["Name a big cat.", "Name one of the big cats."],
       "Lion; Tiger; Leopard; Jaguar; Snow leopard; Cheetah; Cougar|Puma|Mountain lion; "
       "Clouded leopard; Panther|Black panther"),
    _k("marine_mammals",
       ["Name a mammal that lives in the ocean.", "Name a marine mammal."],
       "Whale; Blue whale; Humpback whale; Sperm whale; Killer whale|Orca; Beluga|Beluga whale; "
       "Narwhal; Fin whale; Gray whale|Grey whale; Minke whale; Right whale; Bowhead whale; "
       "Dolphin; Bottlenose dolphin; Porpoise; Seal; Elephant seal; Sea lion; Walrus; Manatee; "
       "Dugong; Sea otter; Polar bear"),
    _k("romance_languages",
       ["Name a Romance language.", "Name a language that descends from Latin."],
       "Spanish; Portuguese; French; Italian; Romanian|Moldovan; Catalan; Galician; "
       "Occitan|Provencal; Sardinian; Romansh; Corsican; Walloon; Ladino; Friulian; Ladin; "
       "Aromanian; Venetian; Neapolitan; Sicilian"),
    _k("first_us_presidents",
       ["Name one of the first five presidents of the United States.",
        "Name one of the first five US presidents."],
       "George Washington|Washington; John Adams|Adams; Thomas Jefferson|Jefferson; "
       "James Madison|Madison; James Monroe|Monroe"),
    _k("seven_dwarfs",
       ["Name one of the Seven Dwarfs from Disney's Snow White.",
        "Name a dwarf from the film Snow White and the Seven Dwarfs."],
       "Doc; Grumpy; Happy; Sleepy; Bashful; Sneezy; Dopey"),
    _n("primes_50_100",
       ["Name a prime number between 50 and 100.",
        "Give a prime number greater than 50 and less than 100."],
       _numbers(51, 99, _is_prime)),
    _n("even_below_20",
       ["Name a positive even number less than 20.", "Give an even number between 1 and 19."],
       _numbers(1, 19, lambda k: k % 2 == 0)),
    _n("odd_below_10",
       ["Name a positive odd number less than 10.", "Give an odd number between 0 and 10."],
       _numbers(1, 9, lambda k: k % 2 == 1)),
    _n("multiples_of_7",
       ["Name a multiple of 7 between 10 and 50.",
        "Give a number between 10 and 50 that is divisible by 7."],
       _numbers(11, 49, lambda k: k % 7 == 0)),
    _n("perfect_squares",
       ["Name a perfect square between 10 and 90.",
        "Give a square number greater than 10 and less than 90."],
       _numbers(11, 89, lambda k: round(k**0.5) ** 2 == k)),
    _n("powers_of_two",
       ["Name a power of 2 between 3 and 1000.",
        "Give a power of two greater than 3 and less than 1000."],
       _numbers(4, 999, lambda k: k & (k - 1) == 0)),
    _n("years_1990s",
       ["Name a year in the 1990s.", "Give a year after 1989 and before 2000."],
       _numbers(1990, 1999, lambda k: True)),
    _n("divisors_of_24",
       ["Name a divisor of 24 other than 1 and 24.",
        "Give a number other than 1 and 24 that divides 24 evenly."],
       _numbers(2, 23, lambda k: 24 % k == 0)),
)
# fmt: on


def _pick(options: Sequence[str], key: str) -> str:
    """A deterministic choice among ``options``, by a hash of ``key``."""
    digest = hashlib.sha256(f"{SEED}:{key}".encode()).hexdigest()
    return options[int(digest, 16) % len(options)]


def category_rows(category: Category) -> list[dict]:
    """The JSONL rows of one category: one per phrasing."""
    answers: list[str] = []
    aliases: dict[str, str] = {}
    for entry in category.answers:
        canonical, *others = entry.split(ALIAS_SEPARATOR)
        answers += [canonical, *others]
        aliases.update(dict.fromkeys(others, canonical))
    suffixes = NUMBER_SUFFIXES if category.numeric else NAME_SUFFIXES
    rows = []
    for k, stem in enumerate(category.stems):
        row_id = f"{category.name}-{k}"
        prompt = f"{stem} {_pick(suffixes, row_id)}"
        rows.append(
            {
                "id": row_id,
                "category": category.name,
                "prompt": prompt,
                "answers": answers,
                "aliases": aliases,
            }
        )
    return rows


def heldout_categories(categories: Sequence[Category] = CATEGORIES) -> set[str]:
    """Names of the held-out categories (see the module docstring for the rule)."""
    heldout: set[str] = set()
    for numeric in (False, True):
        names = sorted(
            (c.name for c in categories if c.numeric == numeric),
            key=lambda name: hashlib.sha256(f"{SEED}:{name}".encode()).hexdigest(),
        )
        heldout.update(names[: int(HELDOUT_SHARE * len(names) + 0.5)])
    return heldout


def write_split_files(out_dir: Path) -> dict[str, Path]:
    """Write ``builtin_train.jsonl`` and ``builtin_heldout.jsonl`` into ``out_dir``."""
    heldout = heldout_categories()
    rows: dict[str, list[dict]] = {"train": [], "heldout": []}
    for category in CATEGORIES:
        rows["heldout" if category.name in heldout else "train"] += category_rows(category)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {split: write_jsonl(out_dir / f"builtin_{split}.jsonl", split_rows)
            for split, split_rows in rows.items()}


def main(argv: Sequence[str] | None = None) -> None:
    build_main(__doc__, write_split_files, argv)


if __name__ == "__main__":
    main()
