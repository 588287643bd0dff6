"""Export real source tables from pip packages into data/sources/*.csv and the manifest data/sources.yaml.

The packages ship their data inside the wheel, so this runs offline: ``pip install -e '.[sources]'`` then
``python scripts/export_source_tables.py [--out data]``. Each exporter trims one dataset to the columns a chart
needs (long format: dimension columns, then measures; rows in time order) and describes it with a
:class:`~thinkimg.data.sources.SourceSpec`. The output is read back and validated before the script ends.
About a quarter of the sources are ``eval``: whole tables, so eval charts never show a training table.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import yaml

from thinkimg.data.sources import MANIFEST, Manifest, SourceSpec, load_sources

BOKEH = "bokeh-sampledata"
VEGA = "vega-datasets"
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
#: Gapminder's region names, as they read inside a title ("in the Americas").
REGIONS = {"America": "the Americas"}
#: Country names shortened for chart labels and titles.
SHORT_NAMES = {
    "Saint Vincent and the Grenadines": "St Vincent & Grenadines",
    "Falkland Islands (Malvinas)": "Falkland Islands",
    "United States of America": "United States",
    "Russian Federation": "Russia",
    "Russian Fed.": "Russia",
    "Republic of Korea": "South Korea",
    "Korea": "South Korea",
    "Dem. People's Republic of Korea": "North Korea",
    "Viet Nam": "Vietnam",
    "Iran (Islamic Republic of)": "Iran",
    "United Republic of Tanzania": "Tanzania",
    "Democratic Republic of the Congo": "DR Congo",
    "Venezuela (Bolivarian Republic of)": "Venezuela",
    "Syrian Arab Republic": "Syria",
    "Latin America and the Caribbean": "Latin America",
}

Exporter = Callable[[], tuple[pd.DataFrame, dict]]


def origin(package: str, dataset: str, licence: str, credit: str, notes: str = "") -> dict:
    return {"package": package, "version": importlib.metadata.version(package), "dataset": dataset,
            "licence": licence, "credit": credit, "notes": notes}


def gapminder() -> tuple[pd.DataFrame, dict]:
    from bokeh_sampledata.gapminder import data

    df = data[["country", "region", "year", "life_expectancy", "fertility", "population"]].copy()
    df["country"] = df["country"].replace(SHORT_NAMES)
    df["region"] = df["region"].replace(REGIONS)
    df = df.dropna(subset=["life_expectancy", "fertility", "population"], how="all")
    df = df.round({"life_expectancy": 2, "fertility": 2}).sort_values(["year", "country"])
    df["population"] = df["population"].round().astype("Int64")
    spec = {
        "name": "gapminder", "split_group": "train",
        "origin": origin(BOKEH, "gapminder", "CC-BY-2.0", "Gapminder.org and the indicator providers it names",
                         "Countries with a name of more than 24 characters shortened; region 'America' written "
                         "'the Americas'."),
        "entity": {"column": "country", "name": "Country"},
        "time": {"column": "year", "name": "Year", "strides": [1, 2, 5, 10]},
        "group": "region",
        "measures": [
            {"column": "life_expectancy", "name": "Life expectancy", "unit": "years", "decimals": 1},
            {"column": "fertility", "name": "Fertility rate", "unit": "children per woman", "decimals": 1},
            {"column": "population", "name": "Population", "unit": "people", "scale": True},
        ],
        "titles": {"by_entity": "{measure} in {group}, {time}", "by_time": "{measure} in {subject}, {span}"},
    }
    return df, spec


def population() -> tuple[pd.DataFrame, dict]:
    from bokeh_sampledata.population import data

    df = data[data["Year"].between(1950, 2020) & (data["Year"] % 10 == 0)].copy()
    df["Location"] = df["Location"].replace(SHORT_NAMES)
    big = df[(df["Year"] == 2020)].groupby("Location")["Value"].sum()
    regions = ["World", "Africa", "Asia", "Europe", "Latin America", "Northern America", "Oceania"]
    keep = [loc for loc in big.index if (big[loc] >= 25e6 and len(loc) <= 24) or loc in regions]
    df = df[df["Location"].isin(keep)]
    start = df["AgeGrpStart"].clip(upper=80) // 10 * 10
    df["age"] = start.map(lambda a: "80+" if a == 80 else f"{a}-{a + 9}")
    wide = (df.assign(start=start).groupby(["Location", "Year", "start", "age", "Sex"])["Value"].sum()
            .unstack("Sex").reset_index())
    wide = wide.rename(columns={"Location": "location", "Year": "year", "Male": "male", "Female": "female"})
    wide = wide.sort_values(["year", "location", "start"])[["location", "year", "age", "male", "female"]]
    wide[["male", "female"]] = wide[["male", "female"]].round().astype("int64")
    spec = {
        "name": "un_population_by_age", "split_group": "train",
        "origin": origin(BOKEH, "population", "CC-BY-3.0-IGO",
                         "United Nations, DESA, Population Division (2024). World Population Prospects 2024",
                         "Years 1950-2020 every 10 years; five-year age groups summed into ten-year bands (80+); "
                         "World, six regions and the countries with at least 25 million people in 2020; "
                         "some country names shortened. No UN endorsement implied."),
        "entity": {"column": "age", "name": "Age group", "ordered": True},
        "time": {"column": "year", "name": "Year"},
        "group": "location",
        "measures": [
            {"column": "male", "name": "Male", "title": "Male population", "unit": "people", "scale": True,
             "family": "Population"},
            {"column": "female", "name": "Female", "title": "Female population", "unit": "people", "scale": True,
             "family": "Population"},
        ],
        "titles": {"by_entity": "{measure} of {group} by age, {time}"},
    }
    return wide, spec


def co2_emissions() -> tuple[pd.DataFrame, dict]:
    from bokeh_sampledata.emissions import data
    from bokeh_sampledata.gapminder import data as gap

    regions = gap.drop_duplicates("country").set_index("country")["region"]
    df = data.dropna().copy()
    df["year"] = df["year"].astype(int)
    df["region"] = df["country"].map(regions).replace(REGIONS)
    df = df.dropna(subset=["region"])
    df["country"] = df["country"].replace(SHORT_NAMES)
    df = df.rename(columns={"emissions": "co2_per_person"}).round({"co2_per_person": 3})
    df = df.sort_values(["year", "country"])[["country", "region", "year", "co2_per_person"]]
    spec = {
        "name": "co2_emissions", "split_group": "eval",
        "origin": origin(BOKEH, "emissions", "Public domain", "Historical Bokeh CO2 emissions sample, 1950-2012",
                         "Region joined from the Gapminder region table; values are tonnes of CO2 per person "
                         "(e.g. United States 2010: 17.5)."),
        "entity": {"column": "country", "name": "Country"},
        "time": {"column": "year", "name": "Year", "strides": [1, 2, 5, 10]},
        "group": "region",
        "measures": [{"column": "co2_per_person", "name": "CO2 per person", "title": "CO2 emissions per person",
                      "unit": "tonnes"}],
        "titles": {"by_entity": "{measure} in {group}, {time}", "by_time": "{measure} in {subject}, {span}"},
    }
    return df, spec


def us_unemployment() -> tuple[pd.DataFrame, dict]:
    from bokeh_sampledata.unemployment1948 import data

    df = data.melt(id_vars="Year", value_vars=MONTHS, var_name="month", value_name="rate")
    df["month"] = pd.Categorical(df["month"], MONTHS)
    df = df.rename(columns={"Year": "year"}).sort_values(["month", "year"]).dropna()
    spec = {
        "name": "us_unemployment", "split_group": "train",
        "origin": origin(BOKEH, "unemployment1948", "Public domain", "U.S. Bureau of Labor Statistics",
                         "Monthly columns melted into rows; the annual column dropped."),
        "entity": {"column": "year", "name": "Year"},
        "time": {"column": "month", "name": "Month"},
        "measures": [{"column": "rate", "name": "Unemployment rate", "unit": "%", "decimals": 1}],
        "titles": {"by_time": "US unemployment rate by month, {subject}"},
    }
    return df[["year", "month", "rate"]], spec


def us_marriages() -> tuple[pd.DataFrame, dict]:
    from bokeh_sampledata.us_marriages_divorces import data

    df = data.rename(columns={"Year": "year", "Marriages": "marriages", "Divorces": "divorces",
                              "Marriages_per_1000": "marriage_rate", "Divorces_per_1000": "divorce_rate"})
    df = df[["year", "marriages", "divorces", "marriage_rate", "divorce_rate"]].sort_values("year")
    df[["marriages", "divorces"]] = df[["marriages", "divorces"]].round().astype("Int64")
    rate, count = "Marriage and divorce rates", "Marriages and divorces"
    spec = {
        "name": "us_marriages_divorces", "split_group": "train",
        "origin": origin(BOKEH, "us_marriages_divorces", "Public domain",
                         "CDC / National Center for Health Statistics; organized by Randal S. Olson"),
        "time": {"column": "year", "name": "Year", "strides": [1, 5, 10]},
        "measures": [
            {"column": "marriages", "name": "Marriages", "scale": True, "family": count},
            {"column": "divorces", "name": "Divorces", "scale": True, "family": count},
            {"column": "marriage_rate", "name": "Marriages", "title": "Marriage rate", "unit": "per 1,000 people",
             "decimals": 1, "family": rate},
            {"column": "divorce_rate", "name": "Divorces", "title": "Divorce rate", "unit": "per 1,000 people",
             "decimals": 1, "family": rate},
        ],
        "titles": {"by_time": "{measure} in the United States, {span}"},
    }
    return df, spec


def degrees_women() -> tuple[pd.DataFrame, dict]:
    from bokeh_sampledata.degrees import data

    short = {"Art and Performance": "Arts", "Communications and Journalism": "Communications",
             "Math and Statistics": "Math & statistics", "Social Sciences and History": "Social sciences"}
    df = data.melt(id_vars="Year", var_name="field", value_name="women_share")
    df["field"] = df["field"].replace(short)
    df = df.rename(columns={"Year": "year"}).round({"women_share": 1}).sort_values(["year", "field"])
    spec = {
        "name": "degrees_women", "split_group": "eval",
        "origin": origin(BOKEH, "degrees", "CC0-1.0",
                         "Suresh Srinivas, bachelor's degrees earned by women in the USA (NCES data, via Kaggle)",
                         "Fields melted into rows; four long field names shortened."),
        "entity": {"column": "field", "name": "Field of study"},
        "time": {"column": "year", "name": "Year", "strides": [1, 2, 5]},
        "measures": [{"column": "women_share", "name": "Women",
                      "title": "Share of US bachelor's degrees earned by women", "unit": "%", "decimals": 1}],
        "titles": {"by_entity": "{measure} by field, {time}", "by_time": "{measure}: {subject}, {span}"},
    }
    return df[["field", "year", "women_share"]], spec


def superstore() -> tuple[pd.DataFrame, dict]:
    from bokeh_sampledata.sample_superstore import data

    df = (data.groupby(["Region", "Sub-Category"])[["Sales", "Profit", "Quantity"]].sum().reset_index()
          .rename(columns={"Region": "region", "Sub-Category": "product", "Sales": "sales", "Profit": "profit",
                           "Quantity": "quantity"}))
    df = df.round({"sales": 2, "profit": 2})
    money = "Sales and profit"
    spec = {
        "name": "superstore", "split_group": "train",
        "origin": origin(BOKEH, "sample_superstore", "CC0-1.0", "Sample Superstore (Tableau demonstration data)",
                         "Orders summed by region and product sub-category."),
        "entity": {"column": "product", "name": "Product"},
        "group": "region",
        "measures": [
            {"column": "sales", "name": "Sales", "unit": "USD", "scale": True, "family": money},
            {"column": "profit", "name": "Profit", "unit": "USD", "scale": True, "family": money},
            {"column": "quantity", "name": "Units sold", "unit": "units"},
        ],
        "titles": {"by_entity": "{measure} by product, {group} region"},
    }
    return df[["region", "product", "sales", "profit", "quantity"]], spec


def lincoln_weather() -> tuple[pd.DataFrame, dict]:
    from bokeh_sampledata.lincoln import data

    df = data.assign(month=pd.to_datetime(data["DATE"]).dt.month)
    df = df.groupby("month")[["TMAX", "TMIN"]].mean()
    df = ((df - 32) * 5 / 9).round(1).reset_index()
    df["month"] = df["month"].map(lambda m: MONTHS[m - 1])
    temperature = "Average temperature"
    spec = {
        "name": "lincoln_weather", "split_group": "eval",
        "origin": origin(BOKEH, "lincoln", "Public domain",
                         "NOAA daily temperatures, Lincoln 11 SW, Nebraska, 2016 (historical Bokeh sample)",
                         "Daily highs and lows averaged by month and converted from °F to °C."),
        "time": {"column": "month", "name": "Month"},
        "measures": [
            {"column": "high", "name": "High", "title": "Average daily high", "unit": "°C", "decimals": 1,
             "family": temperature},
            {"column": "low", "name": "Low", "title": "Average daily low", "unit": "°C", "decimals": 1,
             "family": temperature},
        ],
        "titles": {"by_time": "{measure} in Lincoln, Nebraska, {span} 2016"},
    }
    return df.rename(columns={"TMAX": "high", "TMIN": "low"}), spec


def olympic_medals() -> tuple[pd.DataFrame, dict]:
    from bokeh_sampledata.olympics2014 import data

    rows = [{"country": SHORT_NAMES.get(c["name"], c["name"]), **{k: c["medals"][k] for k in
             ("gold", "silver", "bronze", "total")}} for c in data["data"] if c["medals"]["total"] > 0]
    df = pd.DataFrame(rows).sort_values("country")
    medals = "Medals"
    spec = {
        "name": "olympic_medals_2014", "split_group": "eval",
        "origin": origin(BOKEH, "olympics2014", "BSD-3-Clause",
                         "Bryan Van de Ven, original Bokeh contribution (2014), from public news sources",
                         "Countries that won at least one medal."),
        "entity": {"column": "country", "name": "Country"},
        "measures": [
            {"column": "gold", "name": "Gold", "title": "Gold medals", "unit": "medals", "decimals": 0,
             "family": medals},
            {"column": "silver", "name": "Silver", "title": "Silver medals", "unit": "medals", "decimals": 0,
             "family": medals},
            {"column": "bronze", "name": "Bronze", "title": "Bronze medals", "unit": "medals", "decimals": 0,
             "family": medals},
            {"column": "total", "name": "Medals", "title": "Medals won", "unit": "medals", "decimals": 0},
        ],
        "titles": {"by_entity": "{measure} at the 2014 Winter Olympics"},
    }
    return df, spec


def car_models() -> tuple[pd.DataFrame, dict]:
    from bokeh_sampledata.autompg import autompg_clean

    df = autompg_clean.assign(year=autompg_clean["yr"] + 1900)
    df = df.groupby(["origin", "year"])[["mpg", "hp", "weight"]].mean().reset_index()
    df = df.round({"mpg": 2, "hp": 1}).astype({"weight": "int64"}).sort_values(["year", "origin"])
    spec = {
        "name": "car_models", "split_group": "train",
        "origin": origin(BOKEH, "autompg", "CC0-1.0",
                         "Donoho and Ramos (1982), PRIMDATA CRCARS dataset (1983 ASA Data Exposition)",
                         "Car models averaged by origin and model year."),
        "entity": {"column": "origin", "name": "Origin"},
        "time": {"column": "year", "name": "Model year", "strides": [1, 2]},
        "measures": [
            {"column": "mpg", "name": "Fuel economy", "title": "Average fuel economy", "unit": "miles per gallon",
             "decimals": 1},
            {"column": "hp", "name": "Horsepower", "title": "Average horsepower", "unit": "hp", "decimals": 0},
            {"column": "weight", "name": "Weight", "title": "Average weight", "unit": "lb", "decimals": 0},
        ],
        "titles": {"by_entity": "{measure} of new car models by origin, {time}",
                   "by_time": "{measure} of car models from {subject}, {span}"},
    }
    return df[["origin", "year", "mpg", "hp", "weight"]], spec


def share_prices() -> tuple[pd.DataFrame, dict]:
    from bokeh_sampledata.stocks import data

    names = {"AAPL": "Apple", "GOOG": "Google", "IBM": "IBM", "MSFT": "Microsoft"}
    df = data.assign(year=data["date"].dt.year, company=data["ticker"].map(names)).dropna(subset=["company"])
    df = df[df["year"] <= 2012].groupby(["year", "company"])["close"].mean().round(2).reset_index()
    spec = {
        "name": "share_prices", "split_group": "train",
        "origin": origin(BOKEH, "stocks", "Public domain", "Quandl WIKI Prices (archived copy)",
                         "Unadjusted daily closing prices averaged by calendar year, 2000-2012; Facebook "
                         "(2012 only) left out."),
        "entity": {"column": "company", "name": "Company"},
        "time": {"column": "year", "name": "Year"},
        "measures": [{"column": "close", "name": "Share price", "title": "Average share price", "unit": "USD"}],
        "titles": {"by_entity": "{measure}, {time}", "by_time": "{measure} of {subject}, {span}"},
    }
    return df[["company", "year", "close"]], spec


def iowa_electricity() -> tuple[pd.DataFrame, dict]:
    from vega_datasets import local_data

    df = local_data.iowa_electricity()
    df = df.assign(year=df["year"].dt.year, twh=(df["net_generation"] / 1000).round(2))
    df["source"] = df["source"].replace({"Fossil Fuels": "Fossil fuels", "Nuclear Energy": "Nuclear"})
    spec = {
        "name": "iowa_electricity", "split_group": "train",
        "origin": origin(VEGA, "iowa-electricity", "Public domain",
                         "U.S. Energy Information Administration (via vega-datasets, BSD-3-Clause)",
                         "Thousand megawatt-hours converted to TWh."),
        "entity": {"column": "source", "name": "Source"},
        "time": {"column": "year", "name": "Year", "strides": [1, 2]},
        "measures": [{"column": "twh", "name": "Net generation", "title": "Electricity generation in Iowa",
                      "unit": "TWh"}],
        "titles": {"by_entity": "{measure} by source, {time}", "by_time": "{measure}: {subject}, {span}"},
    }
    return df.sort_values(["year", "source"])[["source", "year", "twh"]], spec


def us_employment() -> tuple[pd.DataFrame, dict]:
    from vega_datasets import local_data

    sectors = {
        "mining_and_logging": "Mining and logging", "construction": "Construction",
        "manufacturing": "Manufacturing", "trade_transportation_utilties": "Trade and transport",
        "information": "Information", "financial_activities": "Financial activities",
        "professional_and_business_services": "Business services",
        "education_and_health_services": "Education and health", "leisure_and_hospitality": "Leisure and hospitality",
        "other_services": "Other services", "government": "Government",
    }
    df = local_data.us_employment()
    df = df.assign(year=pd.to_datetime(df["month"]).dt.year).groupby("year")[list(sectors)].mean().reset_index()
    df = df.melt(id_vars="year", var_name="sector", value_name="jobs")
    df["sector"] = df["sector"].map(sectors)
    df["jobs"] = (df["jobs"] * 1000).round(-3).astype("int64")
    spec = {
        "name": "us_employment", "split_group": "train",
        "origin": origin(VEGA, "us-employment", "Public domain",
                         "U.S. Bureau of Labor Statistics, Current Employment Statistics (via vega-datasets)",
                         "Monthly supersector employment (thousands) averaged by year and converted to jobs."),
        "entity": {"column": "sector", "name": "Sector"},
        "time": {"column": "year", "name": "Year"},
        "measures": [{"column": "jobs", "name": "Jobs", "title": "US employment", "unit": "jobs", "scale": True}],
        "titles": {"by_entity": "{measure} by sector, {time}", "by_time": "{measure} in {subject}, {span}"},
    }
    return df.sort_values(["year", "sector"])[["sector", "year", "jobs"]], spec


def seattle_weather() -> tuple[pd.DataFrame, dict]:
    from vega_datasets import local_data

    df = local_data.seattle_weather()
    df = df.assign(year=df["date"].dt.year, month=df["date"].dt.month)
    df = df.groupby(["year", "month"]).agg(rain=("precipitation", "sum"), high=("temp_max", "mean"),
                                           low=("temp_min", "mean")).reset_index()
    df = df.round({"rain": 1, "high": 1, "low": 1}).sort_values(["month", "year"])
    df["month"] = df["month"].map(lambda m: MONTHS[m - 1])
    temperature = "Average temperature"
    spec = {
        "name": "seattle_weather", "split_group": "train",
        "origin": origin(VEGA, "seattle-weather", "Public domain", "NOAA daily records for Seattle (via vega-datasets)",
                         "Daily precipitation summed and daily highs and lows averaged by month."),
        "entity": {"column": "year", "name": "Year"},
        "time": {"column": "month", "name": "Month"},
        "measures": [
            {"column": "rain", "name": "Precipitation", "title": "Monthly precipitation", "unit": "mm"},
            {"column": "high", "name": "High", "title": "Average daily high", "unit": "°C", "decimals": 1,
             "family": temperature},
            {"column": "low", "name": "Low", "title": "Average daily low", "unit": "°C", "decimals": 1,
             "family": temperature},
        ],
        "titles": {"by_time": "{measure} in Seattle, {subject}"},
    }
    return df[["year", "month", "rain", "high", "low"]], spec


def barley_yields() -> tuple[pd.DataFrame, dict]:
    from vega_datasets import local_data

    df = local_data.barley().round({"yield": 1}).sort_values(["year", "variety", "site"])
    spec = {
        "name": "barley_yields", "split_group": "train",
        "origin": origin(VEGA, "barley", "Public domain",
                         "Immer, Hayes and Powers (1934), Minnesota barley trials (via vega-datasets)"),
        "entity": {"column": "site", "name": "Site"},
        "time": {"column": "year", "name": "Year"},
        "group": "variety",
        "measures": [{"column": "yield", "name": "Yield", "unit": "bushels per acre", "decimals": 1}],
        "titles": {"by_entity": "{measure} of {group} barley at Minnesota sites, {time}"},
    }
    return df[["variety", "site", "year", "yield"]], spec


def crimean_war() -> tuple[pd.DataFrame, dict]:
    from vega_datasets import local_data

    df = local_data.crimea()
    df["month"] = df["date"].dt.strftime("%b %Y")
    deaths = "Deaths"
    spec = {
        "name": "crimean_war_deaths", "split_group": "eval",
        "origin": origin(VEGA, "crimea", "Public domain",
                         "Florence Nightingale (1858), mortality of the British Army in the East"),
        "time": {"column": "month", "name": "Month", "strides": [1, 2]},
        "measures": [
            {"column": "disease", "name": "Disease", "title": "Deaths from disease", "unit": "deaths",
             "decimals": 0, "family": deaths},
            {"column": "wounds", "name": "Wounds", "title": "Deaths from wounds", "unit": "deaths", "decimals": 0,
             "family": deaths},
            {"column": "other", "name": "Other causes", "title": "Deaths from other causes", "unit": "deaths",
             "decimals": 0, "family": deaths},
        ],
        "titles": {"by_time": "{measure} in the British Army in the East, {span}"},
    }
    return df[["month", "disease", "wounds", "other"]], spec


def playfair_wheat() -> tuple[pd.DataFrame, dict]:
    from vega_datasets import local_data

    df = local_data.wheat()
    spec = {
        "name": "playfair_wheat", "split_group": "train",
        "origin": origin(VEGA, "wheat", "Public domain",
                         "William Playfair (1822), price of wheat and weekly wages in England"),
        "time": {"column": "year", "name": "Year", "strides": [1, 2, 4]},
        "measures": [
            {"column": "wheat", "name": "Wheat price", "title": "Price of a quarter of wheat", "unit": "shillings"},
            {"column": "wages", "name": "Weekly wage", "title": "Weekly wage of a good mechanic",
             "unit": "shillings", "decimals": 1},
        ],
        "titles": {"by_time": "{measure} in England, {span}"},
    }
    return df[["year", "wheat", "wages"]], spec


EXPORTERS: list[Exporter] = [
    gapminder, population, co2_emissions, us_unemployment, us_marriages, degrees_women, superstore,
    lincoln_weather, olympic_medals, car_models, share_prices, iowa_electricity, us_employment, seattle_weather,
    barley_yields, crimean_war, playfair_wheat,
]

HEADER = """\
# Source tables for charts, written by scripts/export_source_tables.py (do not edit by hand: re-run it).
# Each entry: the CSV (under data/), its origin and licence, its split (whole tables are train or eval),
# the dimension columns (entity: what a snapshot compares; time: what a trend runs over, in file order;
# group: one value per chart), the measures (series label, title phrase, unit, scale, decimals, family)
# and the title templates of the views it allows (by_entity / by_time). Schema: thinkimg/data/sources.py.
"""


class _Dumper(yaml.SafeDumper):
    """Block-style YAML, except lists of scalars on one line (``strides: [1, 2, 5]``)."""


_Dumper.add_representer(list, lambda dumper, data: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", data, flow_style=not any(isinstance(x, (dict, list)) for x in data)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data", help="data folder (default: data)")
    out = Path(parser.parse_args().out)
    folder = out / "sources"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    specs = []
    for export in EXPORTERS:
        frame, spec = export()
        spec["file"] = f"sources/{spec['name']}.csv"
        specs.append(SourceSpec.model_validate(spec))
        frame.to_csv(out / spec["file"], index=False, lineterminator="\n")
    manifest = Manifest(sources=specs).model_dump(mode="json", exclude_defaults=True)
    text = yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
    (out / MANIFEST).write_text(HEADER + text, encoding="utf-8")
    sources = load_sources(out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    evals = sum(s.split_group == "eval" for s in sources)
    print(f"{len(sources)} sources ({evals} eval), {sum(len(s.frame) for s in sources)} rows, "
          f"{size / 1e6:.2f} MB under {out}")


if __name__ == "__main__":
    main()
