"""Seeded synthetic tables: realistic themes (names, units, magnitudes) with made-up numbers.

Each :class:`Theme` in :data:`THEMES` fixes a category pool (countries, months, products...), the series names
for multi-series tables, a unit, the range every value lies in, the decimals shown and how values vary
(independent, a random walk over time, a seasonal cycle, or percentage shares that sum to 100). Themes belong
to one split group, so eval tables never come from a training theme. Same ``random.Random`` state -> same table.
"""

from __future__ import annotations

import math
import random
import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from thinkimg.data.tables import Table

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
YEARS = tuple(str(y) for y in range(2005, 2025))
QUARTERS = tuple(f"Q{q} {y}" for y in range(2019, 2025) for q in range(1, 5))
RECENT_YEARS = ("2020", "2021", "2022", "2023", "2024")
#: Years a snapshot title may name ({year}).
TITLE_YEARS = range(2015, 2025)
PLACEHOLDERS = {"subject", "year"}
#: Names that take "the" inside a title ("Net migration to the United States").
WITH_ARTICLE = {"United States", "United Kingdom", "Netherlands"}

Shape = Literal["random", "walk", "seasonal", "shares"]


class Theme(BaseModel):
    """What a synthetic table is about; values are drawn inside [``low``, ``high``] at ``decimals``.

    ``title`` (one series) and ``title_multi`` (several) may use {subject} (drawn from ``subjects``) and {year}.
    ``shape``: ``random`` (independent; log-uniform when the range spans 20x or more), ``walk`` (a random walk
    along ordered categories), ``seasonal`` (a yearly cycle over months, from ``profiles``: subject or series ->
    (mean, amplitude); a negative amplitude peaks in January), ``shares`` (each series sums to 100).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    split_group: Literal["train", "eval"]
    title: str
    title_multi: str
    measure: str
    category_name: str
    categories: tuple[str, ...]
    ordered: bool = False
    #: Unordered categories still shown in pool order (a response scale); otherwise in random order.
    keep_order: bool = False
    series: tuple[str, ...]
    subjects: tuple[str, ...] = ()
    unit: str
    low: float
    high: float
    decimals: int = Field(ge=0, le=3)
    shape: Shape = "random"
    profiles: dict[str, tuple[float, float]] = {}

    @model_validator(mode="after")
    def _consistent(self) -> Theme:
        for template in (self.title, self.title_multi):
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
            if fields - PLACEHOLDERS or ("subject" in fields and not self.subjects):
                raise ValueError(f"{self.name}: template {template!r} uses an unknown or empty placeholder")
        if len(set(self.categories)) != len(self.categories) or len(set(self.series)) < 2:
            raise ValueError(f"{self.name}: categories repeat or fewer than two series names")
        if not self.low < self.high or round(self.low, self.decimals) != self.low \
                or round(self.high, self.decimals) != self.high:
            raise ValueError(f"{self.name}: low/high must be ordered and exact at {self.decimals} decimals")
        if self.shape == "shares" and (self.unit != "%" or self.low != 0 or self.high != 100):
            raise ValueError(f"{self.name}: shares are in % between 0 and 100")
        if self.shape == "seasonal" and (self.categories != MONTHS
                                         or (set(self.subjects) | set(self.series)) - set(self.profiles)):
            raise ValueError(f"{self.name}: a seasonal theme runs over MONTHS with a profile for every name")
        return self


COMPANIES = ("Alder & Finch", "Brightwater Foods", "Cobalt Systems", "Delta Ridge Motors", "Evergreen Retail",
             "Harbor Line Logistics", "Kestrel Software", "Lumen Pharmaceuticals", "Meridian Telecom",
             "Northgate Apparel")
COUNTRIES = ("United States", "China", "Germany", "Japan", "India", "United Kingdom", "France", "Brazil", "Italy",
             "Canada", "South Korea", "Australia", "Spain", "Mexico", "Indonesia", "Turkey", "Saudi Arabia",
             "Argentina", "South Africa", "Nigeria", "Poland", "Sweden", "Norway", "Egypt", "Vietnam")
#: City -> (mean temperature °C, half the yearly swing; negative: southern hemisphere).
CLIMATES = {"Oslo": (6.5, 10.5), "Madrid": (15.0, 9.5), "Sydney": (18.5, -4.5), "Toronto": (8.5, 13.0),
            "Singapore": (27.5, 0.8), "Moscow": (5.5, 13.5), "Cairo": (22.5, 7.0), "Tokyo": (16.0, 10.0),
            "Buenos Aires": (17.5, -6.0), "Chicago": (10.0, 14.0), "Delhi": (25.0, 8.5), "Cape Town": (17.0, -4.0)}
#: City -> (mean monthly rainfall mm, half the yearly swing; negative: wettest around January).
RAINFALL = {"London": (55.0, -8.0), "Mumbai": (200.0, 260.0), "Seattle": (80.0, -65.0), "Lagos": (150.0, 110.0),
            "Jakarta": (150.0, -120.0), "Rome": (65.0, -35.0), "Bangkok": (125.0, 120.0), "Vancouver": (100.0, -80.0),
            "Nairobi": (75.0, -35.0), "Lima": (2.0, -1.5)}
MONTHLY_SUBJECTS = ("online store", "news site", "travel blog", "recipe site", "city library website")

THEMES: dict[str, Theme] = {t.name: t for t in (
    Theme(name="regional_revenue", split_group="train", title="Revenue of {subject} by region, {year}",
          title_multi="Revenue of {subject} by region", measure="Revenue", category_name="Region",
          categories=("North America", "Europe", "Asia Pacific", "Latin America", "Middle East", "Africa",
                      "Oceania"), series=RECENT_YEARS, subjects=COMPANIES, unit="million USD", low=20, high=2500,
          decimals=0),
    Theme(name="smartphone_share", split_group="train", title="Smartphone market share, {year}",
          title_multi="Smartphone market share by year", measure="Market share", category_name="Vendor",
          categories=("Samsung", "Apple", "Xiaomi", "Oppo", "Vivo", "Transsion", "Honor", "Motorola", "Others"),
          series=RECENT_YEARS, unit="%", low=0, high=100, decimals=1, shape="shares"),
    Theme(name="monthly_temperature", split_group="train", title="Average monthly temperature in {subject}",
          title_multi="Average monthly temperature", measure="Temperature", category_name="Month",
          categories=MONTHS, ordered=True, series=tuple(CLIMATES), subjects=tuple(CLIMATES), unit="°C", low=-25,
          high=38, decimals=1, shape="seasonal", profiles=CLIMATES),
    Theme(name="exports_by_destination", split_group="train", title="Exports of {subject} by destination, {year}",
          title_multi="Exports of {subject} by destination", measure="Exports", category_name="Destination",
          categories=("United States", "China", "Germany", "Japan", "United Kingdom", "France", "India",
                      "Netherlands", "South Korea", "Mexico", "Canada", "Singapore"), series=RECENT_YEARS,
          subjects=("Australia", "Chile", "Vietnam", "Poland", "Turkey", "Norway", "Thailand", "Malaysia"),
          unit="billion USD", low=0.5, high=150, decimals=1),
    Theme(name="monthly_rainfall", split_group="train", title="Monthly rainfall in {subject}",
          title_multi="Monthly rainfall", measure="Rainfall", category_name="Month", categories=MONTHS,
          ordered=True, series=tuple(RAINFALL), subjects=tuple(RAINFALL), unit="mm", low=0, high=700, decimals=0,
          shape="seasonal", profiles=RAINFALL),
    Theme(name="electricity_mix", split_group="train", title="Electricity generation by source in {subject}, {year}",
          title_multi="Electricity generation by source in {subject}", measure="Generation", category_name="Source",
          categories=("Coal", "Natural gas", "Nuclear", "Hydropower", "Wind", "Solar", "Bioenergy", "Oil"),
          series=RECENT_YEARS, subjects=COUNTRIES, unit="TWh", low=1, high=900, decimals=0),
    Theme(name="quarterly_unit_sales", split_group="train", title="Quarterly unit sales of the {subject}",
          title_multi="Quarterly unit sales by product", measure="Units sold", category_name="Quarter",
          categories=QUARTERS, ordered=True,
          series=("Aria X2 headphones", "Volta e-bike", "Nimbus tablet", "Pulse smartwatch", "Orbit speaker"),
          subjects=("Aria X2 headphones", "Volta e-bike", "Nimbus tablet", "Pulse smartwatch", "Orbit speaker"),
          unit="units", low=500, high=90000, decimals=0, shape="walk"),
    Theme(name="city_population", split_group="train", title="Population of major cities, {year}",
          title_multi="Population of major cities", measure="Population", category_name="City",
          categories=("Tokyo", "Delhi", "Shanghai", "São Paulo", "Mexico City", "Cairo", "Mumbai", "Beijing",
                      "Dhaka", "Osaka", "Lagos", "Istanbul", "Paris", "London", "Lima", "Bogotá"),
          series=("2000", "2010", "2020"), unit="million", low=1, high=38, decimals=1),
    Theme(name="co2_per_capita", split_group="train", title="CO2 emissions per person, {year}",
          title_multi="CO2 emissions per person", measure="CO2 emissions", category_name="Country",
          categories=COUNTRIES, series=("2000", "2010", "2020"), unit="tonnes", low=0.1, high=25, decimals=1),
    Theme(name="website_visits", split_group="train", title="Monthly visits to the {subject}, {year}",
          title_multi="Monthly website visits, {year}", measure="Visits", category_name="Month",
          categories=MONTHS, ordered=True, series=MONTHLY_SUBJECTS, subjects=MONTHLY_SUBJECTS,
          unit="thousand visits", low=5, high=900, decimals=0, shape="walk"),
    Theme(name="division_profit", split_group="train", title="Operating profit of {subject} by division, {year}",
          title_multi="Operating profit of {subject} by division", measure="Operating profit",
          category_name="Division", categories=("Consumer", "Enterprise", "Cloud services", "Hardware",
                                                "Advertising", "Licensing", "Services", "Retail"),
          series=RECENT_YEARS, subjects=COMPANIES, unit="million USD", low=-150, high=600, decimals=0),
    Theme(name="household_spending", split_group="train", title="Household spending by category in {subject}, {year}",
          title_multi="Household spending by category in {subject}", measure="Share of spending",
          category_name="Category", categories=("Housing", "Food", "Transport", "Health", "Education",
                                                "Recreation", "Clothing", "Utilities", "Other"),
          series=("2010", "2015", "2020"), subjects=COUNTRIES, unit="%", low=0, high=100, decimals=1,
          shape="shares"),
    Theme(name="gdp_growth", split_group="train", title="Annual GDP growth in {subject}",
          title_multi="Annual GDP growth", measure="GDP growth", category_name="Year", categories=YEARS,
          ordered=True, series=COUNTRIES, subjects=COUNTRIES, unit="%", low=-6, high=9, decimals=1, shape="walk"),
    Theme(name="unemployment_rate", split_group="train", title="Unemployment rate in {subject}",
          title_multi="Unemployment rate", measure="Unemployment rate", category_name="Year", categories=YEARS,
          ordered=True, series=COUNTRIES, subjects=COUNTRIES, unit="%", low=2, high=15, decimals=1, shape="walk"),
    Theme(name="student_enrollment", split_group="train", title="Students enrolled at {subject} by faculty, {year}",
          title_multi="Students enrolled at {subject} by faculty", measure="Students", category_name="Faculty",
          categories=("Engineering", "Medicine", "Law", "Business", "Arts", "Sciences", "Education", "Nursing",
                      "Architecture"), series=("2020", "2022", "2024"),
          subjects=("Riverside University", "Northbridge College", "Lakeshore University", "Highland Institute"),
          unit="students", low=150, high=9000, decimals=0),
    Theme(name="survey_satisfaction", split_group="eval", title="How satisfied are residents with {subject}?",
          title_multi="Satisfaction with {subject} by age group", measure="Respondents", category_name="Response",
          categories=("Very satisfied", "Satisfied", "Neutral", "Dissatisfied", "Very dissatisfied"),
          keep_order=True, series=("18-29", "30-44", "45-64", "65+"),
          subjects=("public transport", "local parks", "waste collection", "healthcare services", "road repair"),
          unit="%", low=0, high=100, decimals=0, shape="shares"),
    Theme(name="tourist_arrivals", split_group="eval", title="International tourist arrivals, {year}",
          title_multi="International tourist arrivals", measure="Arrivals", category_name="Country",
          categories=("France", "Spain", "United States", "Italy", "Turkey", "Mexico", "Thailand", "Germany",
                      "United Kingdom", "Greece", "Japan", "Portugal"), series=("2019", "2022", "2023"),
          unit="million", low=1, high=90, decimals=1),
    Theme(name="store_monthly_sales", split_group="eval", title="Monthly sales at {subject}, {year}",
          title_multi="Monthly sales by store, {year}", measure="Sales", category_name="Month", categories=MONTHS,
          ordered=True, series=("Downtown", "Airport", "Harbourfront", "Mall East"),
          subjects=("the Downtown store", "the Airport store", "the Harbourfront store", "the Mall East store"),
          unit="thousand USD", low=20, high=800, decimals=0, shape="walk"),
    Theme(name="water_use", split_group="eval", title="Household water use per person, {year}",
          title_multi="Household water use per person", measure="Water use", category_name="Country",
          categories=COUNTRIES, series=("2005", "2015", "2020"), unit="litres per day", low=50, high=400,
          decimals=0),
    Theme(name="net_migration", split_group="eval", title="Net migration to {subject}", title_multi="Net migration",
          measure="Net migration", category_name="Year", categories=YEARS, ordered=True, series=COUNTRIES,
          subjects=COUNTRIES, unit="thousand people", low=-300, high=900, decimals=0, shape="walk"),
)}


def themes(split_group: str | None = None) -> list[Theme]:
    """The themes of one split group (all when None)."""
    return [t for t in THEMES.values() if split_group is None or t.split_group == split_group]


def synthetic_table(rng: random.Random, *, theme: str | None = None, n_categories: int, n_series: int = 1,
                    ordered: bool | None = None, split_group: str = "train") -> Table:
    """A table of ``n_categories`` x ``n_series`` from ``theme`` (or a random theme of ``split_group``).

    ``ordered`` restricts the theme to ordered (months, years, quarters) or unordered categories. Raises
    ValueError when the theme is of another split group or cannot give that many categories or series.
    """
    if n_categories < 1 or n_series < 1:
        raise ValueError("n_categories and n_series must be >= 1")
    if theme is not None:
        if theme not in THEMES:
            raise ValueError(f"unknown theme {theme!r}; known: {sorted(THEMES)}")
        chosen = THEMES[theme]
        if chosen.split_group != split_group:
            raise ValueError(f"theme {theme!r} belongs to split group {chosen.split_group!r}, not {split_group!r}")
        candidates = [chosen] if _fits(chosen, n_categories, n_series, ordered) else []
    else:
        candidates = [t for t in themes(split_group) if _fits(t, n_categories, n_series, ordered)]
    if not candidates:
        raise ValueError(f"no {split_group} theme{f' {theme!r}' if theme else ''} gives {n_categories} "
                         f"categories x {n_series} series (ordered={ordered})")
    t = rng.choice(candidates)
    if t.ordered:
        start = rng.randrange(len(t.categories) - n_categories + 1)
        categories = list(t.categories[start:start + n_categories])
    else:
        picked = rng.sample(range(len(t.categories)), n_categories)
        categories = [t.categories[i] for i in (sorted(picked) if t.keep_order else picked)]
    subject = rng.choice(t.subjects) if t.subjects else ""
    context = {"subject": f"the {subject}" if subject in WITH_ARTICLE else subject,
               "year": str(rng.choice(TITLE_YEARS))}
    if n_series == 1:
        names, title = [t.measure], t.title.format(**context)
    else:
        names = [t.series[i] for i in sorted(rng.sample(range(len(t.series)), n_series))]
        title = t.title_multi.format(**context)
    series = _series(t, rng, categories, names, subject)
    return Table(title=title, categories=categories, series=series, unit=t.unit, category_name=t.category_name,
                 ordered=t.ordered, source=f"synthetic:{t.name}", split_group=t.split_group,
                 meta={"decimals": t.decimals})


def _fits(t: Theme, n_categories: int, n_series: int, ordered: bool | None) -> bool:
    return (n_categories <= len(t.categories) and (n_series == 1 or n_series <= len(t.series))
            and ordered in (None, t.ordered))


def _series(t: Theme, rng: random.Random, categories: list[str], names: list[str],
            subject: str) -> dict[str, list[float]]:
    """Values for each series name, inside [low, high] and rounded to the theme's decimals.

    ``random`` and ``shares`` series vary around one shared base (the same regions in two years differ by a
    few percent, not at random); ``walk`` and ``seasonal`` series are drawn one by one.
    """
    n = len(categories)
    if t.shape in ("random", "shares"):
        base = [_level(t, rng) if t.shape == "random" else rng.gammavariate(1.5, 1.0) + 0.15 for _ in range(n)]
        out = {}
        for k, name in enumerate(names):
            growth = rng.gauss(0, 0.08) if k else 0.0
            varied = [b * math.exp(growth + rng.gauss(0, 0.12)) if k else b for b in base]
            out[name] = _shares(varied, t.decimals) if t.shape == "shares" else _clip(t, varied)
        return out
    if t.shape == "seasonal":
        first = MONTHS.index(categories[0])
        out = {}
        for name in names:
            mean, amplitude = t.profiles[name if len(names) > 1 else subject]
            noise = 0.1 * abs(amplitude) + 0.01 * (t.high - t.low)
            out[name] = _clip(t, [mean + amplitude * math.cos(2 * math.pi * (first + i - 6) / 12)
                                  + rng.gauss(0, noise) for i in range(n)])
        return out
    return {name: _clip(t, _walk(t, rng, n)) for name in names}


def _walk(t: Theme, rng: random.Random, n: int) -> list[float]:
    """A random walk inside [low, high] (reflected at the ends): multiplicative on log-range themes."""
    values = [_level(t, rng)]
    logscale = t.low > 0 and t.high / t.low >= 20
    span = t.high - t.low
    drift = rng.uniform(-0.04, 0.04) if logscale else rng.uniform(-0.02, 0.02) * span
    for _ in range(n - 1):
        v = values[-1] * math.exp(drift + rng.gauss(0, 0.12)) if logscale else \
            values[-1] + drift + rng.gauss(0, 0.06 * span)
        values.append(2 * t.high - v if v > t.high else 2 * t.low - v if v < t.low else v)
    return values


def _clip(t: Theme, values: list[float]) -> list[float]:
    return [round(min(t.high, max(t.low, v)), t.decimals) + 0.0 for v in values]


def _level(t: Theme, rng: random.Random) -> float:
    """One value in [low, high]: log-uniform when the range spans 20x or more, else uniform."""
    if t.low > 0 and t.high / t.low >= 20:
        return math.exp(rng.uniform(math.log(t.low), math.log(t.high)))
    return rng.uniform(t.low, t.high)


def _shares(weights: list[float], decimals: int) -> list[float]:
    """Positive percentages proportional to ``weights`` that sum to exactly 100 at ``decimals``
    (largest-remainder rounding; every share at least one unit of the last decimal)."""
    n = len(weights)
    unit = 10 ** decimals
    total = 100 * unit
    exact = [w / sum(weights) * total for w in weights]
    counts = [max(1, math.floor(x)) for x in exact]
    by_remainder = sorted(range(n), key=lambda i: exact[i] - math.floor(exact[i]), reverse=True)
    for k in range(total - sum(counts)):
        counts[by_remainder[k % n]] += 1
    while sum(counts) > total:
        counts[counts.index(max(counts))] -= 1
    return [c / unit for c in counts]
