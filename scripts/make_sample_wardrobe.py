#!/usr/bin/env python3
"""Draw the sample wardrobe that ships with the package (no copied data).

Each item is a flat garment silhouette in a named colour, drawn with Pillow, with a
hand-written title and caption so ``mlx-outfit recommend`` needs no vision model.
Writes ``mlx_outfit/recommend/sample_wardrobe/`` (a standard catalog with relative image
paths). Deterministic: running it again rewrites identical files.

    python scripts/make_sample_wardrobe.py
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from mlx_outfit.catalog import Catalog, Item, save_catalog

OUT = Path(__file__).resolve().parents[1] / "mlx_outfit" / "recommend" / "sample_wardrobe"
SIZE = (96, 120)
BACKGROUND = (245, 245, 242)
COLOURS = {
    "white": (250, 250, 250), "black": (30, 30, 30), "navy": (28, 40, 90), "grey": (140, 140, 140),
    "beige": (215, 195, 160), "camel": (190, 140, 80), "red": (190, 35, 40), "olive": (110, 115, 50),
    "light blue": (150, 190, 225), "denim blue": (60, 90, 140), "brown": (110, 70, 40),
    "burgundy": (110, 25, 45), "pink": (235, 170, 185), "mustard": (210, 165, 40), "green": (40, 120, 70),
}

# Silhouettes as polygons / ellipses on a 96x120 canvas.
SHAPES = {
    "tshirt": [(20, 20), (38, 14), (58, 14), (76, 20), (90, 40), (76, 48), (72, 40), (72, 104), (24, 104),
               (24, 40), (20, 48), (6, 40)],
    "shirt": [(22, 18), (40, 12), (56, 12), (74, 18), (86, 100), (72, 102), (70, 44), (70, 106), (26, 106),
              (26, 44), (24, 102), (10, 100)],
    "sweater": [(18, 20), (36, 12), (60, 12), (78, 20), (90, 98), (76, 100), (70, 46), (72, 104), (24, 104),
                (26, 46), (20, 100), (6, 98)],
    "trousers": [(28, 10), (68, 10), (74, 110), (54, 110), (48, 40), (42, 110), (22, 110)],
    "shorts": [(24, 30), (72, 30), (80, 84), (54, 86), (48, 56), (42, 86), (16, 84)],
    "skirt": [(32, 16), (64, 16), (84, 104), (12, 104)],
    "sneaker": [(8, 60), (40, 56), (60, 70), (88, 78), (90, 96), (8, 96)],
    "boot": [(30, 10), (58, 10), (58, 70), (88, 82), (90, 104), (30, 104)],
    "heel": [(8, 78), (30, 70), (56, 80), (84, 58), (90, 64), (80, 100), (72, 100), (62, 90), (14, 92)],
    "tote": [(16, 44), (80, 44), (86, 108), (10, 108)],
    "shoulder_bag": [(14, 56), (82, 56), (82, 100), (14, 100)],
    "backpack": [(24, 24), (72, 24), (80, 108), (16, 108)],
    "coat": [(22, 12), (40, 8), (56, 8), (74, 12), (88, 110), (74, 112), (70, 50), (72, 114), (24, 114),
             (26, 50), (22, 112), (8, 110)],
    "jacket": [(20, 18), (38, 12), (58, 12), (76, 18), (88, 86), (74, 88), (70, 46), (72, 92), (24, 92),
               (26, 46), (22, 88), (8, 86)],
    "scarf": [(10, 20), (86, 20), (86, 40), (62, 40), (62, 108), (42, 108), (42, 40), (10, 40)],
    "belt": [(4, 52), (92, 52), (92, 68), (4, 68)],
    "hat": [(4, 78), (92, 78), (92, 88), (4, 88)],
    "sunglasses": [],
    "earrings": [],
}

# (id, category, shape, colour, title, caption, attributes)
ITEMS = [
    ("top-01", "top", "tshirt", "white", "white cotton t-shirt", "plain crew-neck tee, relaxed fit", {"fabric": "cotton"}),
    ("top-02", "top", "shirt", "light blue", "light blue oxford shirt", "button-down shirt, long sleeves", {"fabric": "cotton"}),
    ("top-03", "top", "sweater", "burgundy", "burgundy wool sweater", "chunky knit jumper, crew neck", {"fabric": "wool"}),
    ("top-04", "top", "tshirt", "black", "black fitted top", "short-sleeve stretch top, sleek", {"fabric": "jersey"}),
    ("top-05", "top", "sweater", "mustard", "mustard cardigan", "soft knit cardigan with buttons", {"fabric": "wool"}),
    ("bottom-01", "bottom", "trousers", "denim blue", "blue straight-leg jeans", "mid-wash denim, five pockets", {"fabric": "denim"}),
    ("bottom-02", "bottom", "trousers", "black", "black tailored trousers", "slim formal trousers with crease", {"fabric": "wool blend"}),
    ("bottom-03", "bottom", "skirt", "camel", "camel midi skirt", "a-line suede skirt, midi length", {"fabric": "suede"}),
    ("bottom-04", "bottom", "shorts", "beige", "beige chino shorts", "casual summer shorts", {"fabric": "cotton"}),
    ("bottom-05", "bottom", "skirt", "navy", "navy pleated skirt", "pleated knee-length skirt", {"fabric": "polyester"}),
    ("shoes-01", "shoes", "sneaker", "white", "white leather sneakers", "clean low-top trainers", {"fabric": "leather"}),
    ("shoes-02", "shoes", "boot", "black", "black ankle boots", "leather chelsea boots, block heel", {"fabric": "leather"}),
    ("shoes-03", "shoes", "heel", "red", "red high heels", "pointed-toe stiletto pumps", {"fabric": "patent leather"}),
    ("shoes-04", "shoes", "boot", "brown", "brown suede boots", "knee-high boots, flat sole", {"fabric": "suede"}),
    ("bag-01", "bag", "tote", "beige", "beige canvas tote", "large everyday tote bag", {"fabric": "canvas"}),
    ("bag-02", "bag", "shoulder_bag", "black", "black leather shoulder bag", "small structured bag, gold clasp", {"fabric": "leather"}),
    ("bag-03", "bag", "backpack", "olive", "olive backpack", "casual nylon backpack", {"fabric": "nylon"}),
    ("outerwear-01", "outerwear", "coat", "camel", "camel wool coat", "long tailored overcoat", {"fabric": "wool"}),
    ("outerwear-02", "outerwear", "jacket", "denim blue", "blue denim jacket", "classic trucker jacket", {"fabric": "denim"}),
    ("outerwear-03", "outerwear", "jacket", "black", "black leather biker jacket", "zip-up moto jacket", {"fabric": "leather"}),
    ("outerwear-04", "outerwear", "jacket", "navy", "navy blazer", "single-breasted tailored blazer", {"fabric": "wool"}),
    ("accessory-01", "accessory", "scarf", "red", "red wool scarf", "long warm knitted scarf", {"fabric": "wool"}),
    ("accessory-02", "accessory", "belt", "brown", "brown leather belt", "plain belt with metal buckle", {"fabric": "leather"}),
    ("accessory-03", "accessory", "sunglasses", "black", "black sunglasses", "round sunglasses, thin frame", {"fabric": "acetate"}),
    ("accessory-04", "accessory", "hat", "beige", "beige straw hat", "wide-brim summer hat", {"fabric": "straw"}),
    ("accessory-05", "accessory", "earrings", "mustard", "gold hoop earrings", "medium hoops, polished", {"fabric": "metal"}),
]


def draw(shape: str, colour: str) -> Image.Image:
    image = Image.new("RGB", SIZE, BACKGROUND)
    pen = ImageDraw.Draw(image)
    fill, outline = COLOURS[colour], (60, 60, 60)
    if shape == "sunglasses":
        pen.ellipse((10, 46, 44, 76), fill=fill, outline=outline, width=2)
        pen.ellipse((52, 46, 86, 76), fill=fill, outline=outline, width=2)
        pen.line((44, 58, 52, 58), fill=outline, width=3)
    elif shape == "earrings":
        for x in (22, 56):
            pen.ellipse((x, 40, x + 20, 80), outline=fill, width=5)
    else:
        pen.polygon(SHAPES[shape], fill=fill, outline=outline)
        if shape == "hat":
            pen.ellipse((26, 40, 70, 84), fill=fill, outline=outline)
        if shape in ("tote", "shoulder_bag", "backpack"):
            pen.arc((28, SHAPES[shape][0][1] - 26, 68, SHAPES[shape][0][1] + 14), 180, 360, fill=outline, width=3)
    # A palette image keeps each file around a kilobyte.
    return image.quantize(colors=16)


def main() -> None:
    (OUT / "images").mkdir(parents=True, exist_ok=True)
    catalog = Catalog(root=OUT)
    for item_id, category, shape, colour, title, caption, attributes in ITEMS:
        relative = f"images/{item_id}.png"
        draw(shape, colour).save(OUT / relative, optimize=True)
        catalog.items[item_id] = Item(id=item_id, category=category, title=title,
                                      attributes={"colour": colour, **attributes}, image=relative,
                                      caption=caption, caption_raw=caption,
                                      caption_source="hand-written (sample wardrobe)")
    save_catalog(catalog)
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {len(catalog.items)} items to {OUT} ({size / 1024:.1f} KB)")


if __name__ == "__main__":
    main()
