"""The rule patterns, in EN, DE, FR, ES, IT, NL and PL.

Every pattern matches the output of `normalise`: lower case, accents folded (so `uberspringen`
also matches "überspringen", `zyd` matches "Żyd"), one line. Vocabulary is grouped by
meaning, one alternation per language, so a missing word in one language is easy to add.
Rules that need more than words (named_person, hidden_text) are judged in code; their
pattern tuple here holds only the cue words that come with them.
"""

from __future__ import annotations

import re

from faceloop.playbooks.schema import PROMPT_RULES, PromptRule

# vocabulary packed by language: a line per group of words reads better than a word a line
# fmt: off
__all__ = ["GATES", "MINOR_PRODUCT_USE", "PATTERNS", "PROTECTED_BARE", "REAL_PEOPLE"]


def _any(*parts: str) -> str:
    return "(?:" + "|".join(parts) + ")"


# --------------------------------------------------------------------------- safeguards
# the things a campaign must keep: watermark, C2PA, the AI label, the human review

_AI = r"(?:ai|ki|ia|si|a\.i\.)"
_AI_MADE = _any(
    rf"{_AI}[- ]?(?:generated|made|created|generiert\w*|erstellt\w*|genere\w*|generad\w*|"
    r"generat\w*|gegenereerd\w*|wygenerowan\w*)",
    rf"(?:generated|made|created) (?:by|with|using) {_AI}",
    rf"(?:genere|cree|realise)e?s? (?:par|avec) (?:l'|une? )?{_AI}",
    rf"(?:generad|cread|hech)[oa]s? (?:por|con) (?:la |una )?{_AI}",
    rf"(?:generat|creat|realizzat)[oaie] (?:da|con|dall') ?(?:l'|un'? )?{_AI}",
    rf"(?:gegenereerd|gemaakt) (?:door|met) (?:een )?{_AI}",
    rf"(?:wygenerowan|stworzon)\w* (?:przez|z) {_AI}",
    rf"(?:mit|von|durch) (?:einer )?{_AI} (?:generiert|erstellt|erzeugt)",
)
_LABEL_WORD = _any(
    r"labels?", r"tags?", r"notices?", r"disclaimers?", r"disclosures?", r"mentions?",
    r"kennzeichnung\w*", r"hinweis\w*", r"vermerk\w*", r"etiquettes?", r"avertissements?",
    r"etiquetas?", r"avisos?", r"indicaciones", r"advertencias?", r"etichett\w*", r"dicitur\w*",
    r"avvis\w*", r"vermelding\w*", r"markering\w*", r"oznaczen\w*", r"etykiet\w*",
    r"informacj\w*", r"adnotacj\w*",
)
_SAFEGUARD = _any(
    r"watermark\w*", r"wasserzeichen", r"filigranes?", r"tatouage numerique",
    r"marcas? de agua", r"filigran\w*", r"watermerk\w*", r"znak\w* wodn\w*", r"c2pa\w*",
    r"content credentials?", r"provenance\w*", r"herkunfts\w*", r"procedencia", r"provenienza",
    r"herkomst\w*", r"pochodzeni\w*",
    rf"{_AI}[- ]?{_LABEL_WORD}",
    rf"{_LABEL_WORD} (?:(?:de|di|van|z|d') ?)?(?:l'|la )?{_AI}\b",
    rf"{_LABEL_WORD} [\"']? ?{_AI_MADE}",
    rf"{_AI_MADE} ?[\"']?[- ]?{_LABEL_WORD}",
    r"ki-?kennzeichnung\w*", r"ai disclosures?", r"disclosures?", r"kennzeichnungspflicht",
    r"(?:(?:c2pa|provenance|herkunfts|content)[- ]?)?(?:metadata|metadaten|metadonnees|"
    r"metadatos|metadati|metadane\w*|manifest\w*)",
)
# a review counts when it is the review: qualified, or "the review" itself
_REVIEW_NOUN = _any(
    r"reviews?", r"approvals?", r"sign[- ]?offs?", r"checks?", r"moderation", r"four[- ]eyes",
    r"freigabe\w*", r"prufung\w*", r"uberprufung\w*", r"kontrolle\w*", r"abnahme",
    r"validations?", r"relectures?", r"revues?", r"verifications?", r"controles?",
    r"revision(?:es)?", r"aprobacion(?:es)?", r"validacion(?:es)?", r"control(?:es)?",
    r"moderacion", r"revision[ei]", r"approvazion[ei]", r"verific[ah]e?", r"controll[io]",
    r"moderazione", r"controle", r"goedkeuring\w*", r"beoordeling\w*", r"toetsing\w*",
    r"weryfikacj\w*", r"zatwierdzen\w*", r"kontrol\w*", r"przeglad\w*", r"moderacj\w*",
    r"akceptacj\w*",
)
_REVIEW_QUAL = _any(
    r"compliance", r"human", r"manual", r"legal", r"editorial", r"safety", r"brand[- ]safety",
    r"policy", r"guardrails?", r"menschlich\w*", r"manuell\w*", r"rechtlich\w*",
    r"juristisch\w*", r"conformite", r"humaine?s?", r"manuelle?s?", r"juridique",
    r"cumplimiento", r"humanas?", r"manual(?:es)?", r"juridica", r"legale", r"conformita",
    r"umana", r"menselijke?", r"juridische?", r"zgodnosci", r"czlowieka", r"reczn\w*",
    r"prawn\w*", r"ludzk\w*", r"dzia\w* zgodnosci",
)
_REVIEW = _any(
    rf"{_REVIEW_QUAL}[- ]?{_REVIEW_NOUN}",
    rf"{_REVIEW_NOUN} (?:\w+ ){{0,2}}{_REVIEW_QUAL}",
    rf"(?:the|any|all|our|die|den|der|jede|la|le|les|el|los|las|il|lo|de|het|alle)"
    rf" {_REVIEW_NOUN}",
    r"compliance",
)
_DROP = _any(
    # EN
    r"without", r"no", r"skip\w*", r"remov\w*", r"strip\w*", r"drop\w*", r"delet\w*",
    r"omit\w*", r"leav\w* out", r"hid(?:e|ing)", r"disabl\w*", r"bypass\w*", r"avoid\w*",
    r"get rid of", r"don'?t (?:add|include|put|embed|show|apply|use)",
    r"do not (?:add|include|"
    r"put|embed|show|apply|use)",
    r"circumvent\w*", r"go live (?:before|without)",
    # DE
    r"ohne", r"kein\w*", r"entfern\w*", r"weglass\w*", r"weg(?:lassen|nehmen)",
    r"uberspring\w*", r"streich\w*", r"losch\w*", r"auslass\w*", r"verzicht\w*", r"umgeh\w*",
    r"deaktivier\w*", r"nicht (?:einbetten|anzeigen|kennzeichnen|einfugen|zeigen)",
    # FR
    r"sans", r"pas de", r"retir\w*", r"supprim\w*", r"enlev\w*", r"omet\w*", r"ignor\w*",
    r"contourn\w*", r"saut\w*", r"desactiv\w*", r"masqu\w*", r"evit\w*",
    # ES
    r"sin", r"quit\w*", r"elimin\w*", r"borr\w*", r"omit\w*", r"salt\w*", r"ocult\w*",
    r"no (?:poner|incluir|anadir|mostrar|usar)", r"prescind\w*",
    # IT
    r"senza", r"togl\w*", r"rimuov\w*", r"salta\w*", r"ometti\w*", r"omett\w*", r"evita\w*",
    r"disattiv\w*", r"nascond\w*", r"niente",
    # NL
    r"zonder", r"geen", r"verwijder\w*", r"sla\w*(?: \w+){0,4} over", r"overslaan",
    r"weglat\w*", r"laat(?: \w+){0,4} weg", r"schrap\w*", r"omzeil\w*", r"uitschakel\w*",
    # PL
    r"bez", r"usun\w*", r"pomin\w*", r"pomij\w*", r"wylacz\w*", r"ukryj\w*", r"omin\w*",
    r"nie (?:dodawaj|umieszczaj|pokazuj|osadzaj)\w*",
)
_DROP_AFTER = _any(  # object first: "Wasserzeichen entfernen", "la revisione saltata"
    r"entfern\w*",
    r"weglass\w*", r"weg", r"uberspring\w*", r"streich\w*", r"losch\w*", r"auslass\w*",
    r"umgeh\w*", r"deaktivier\w*", r"removed", r"stripped", r"dropped", r"skipped", r"omitted",
    r"supprime\w*", r"retire\w*", r"eliminad\w*", r"omitid\w*", r"rimoss\w*", r"eliminat\w*",
    r"saltat\w*", r"verwijderd", r"overslaan", r"weglaten", r"usuniet\w*", r"pominiet\w*",
    r"niepotrzebn\w*", r"overbodig", r"unnecessary", r"uberflussig", r"inutile\w*",
    r"innecesari\w*",
)

SKIP_SAFEGUARDS = (
    rf"\b{_DROP}\b(?: [\w'\"-]+){{0,5}}? [\"']?{_SAFEGUARD}",
    rf"\b{_DROP}\b(?: [\w'\"-]+){{0,2}}? [\"']?{_REVIEW}\b",
    rf"\b{_SAFEGUARD}\b[\"']?(?: [\w'\"-]+){{0,4}}? {_DROP_AFTER}\b",
    rf"\b{_REVIEW}\b(?: [\w'\"-]+){{0,3}}? {_DROP_AFTER}\b",
    # published or live before anyone looked: "publish straight away, no review needed"
    r"\b(?:no|kein\w*|pas de|sin|nessun\w*|geen|bez) (?:\w+ ){0,2}(?:review|freigabe|"
    r"validation|revision|revisione|controle|weryfikacj\w*) (?:needed|required|notig|"
    r"necessaire|necesari\w*|necessari\w*|nodig|potrzebn\w*)",
)

# --------------------------------------------------------------------------- protected

PROTECTED_TERMS = _any(
    # EN
    r"religio\w*", r"muslims?", r"islam\w*", r"jews?", r"jewish", r"christians?", r"catholics?",
    r"hindus?", r"sikhs?", r"buddhists?", r"atheists?", r"ethnic\w*", r"races?", r"racial\w*",
    r"black people", r"white people", r"asian people", r"hispanics?", r"latin[oax]s?",
    r"arabs?", r"immigrants?", r"refugees?", r"roma people", r"gypsies", r"gays?", r"lesbians?",
    r"bisexual\w*", r"lgbt\w*", r"queer", r"transgender\w*", r"sexual orientation", r"disab\w*",
    r"pregnan\w*", r"illness\w*", r"disease\w*", r"hiv", r"cancer patients", r"mental health",
    r"depress\w*", r"diabet\w*", r"political\w*", r"democrats?", r"republicans?",
    r"trade unions?", r"caste",
    r"(?:light|dark|fair)[- ]skinned (?:people|users|customers|viewers)",
    # DE
    r"muslim\w*", r"moslem\w*", r"jud(?:e|en|in|innen|isch\w*)", r"christ(?:en|in|innen)",
    r"christlich\w*", r"katholi\w*", r"evangelisch\w*", r"hinduist\w*", r"buddhist\w*",
    r"atheist\w*", r"religios\w*", r"ethnisch\w*", r"rasse\w*", r"hautfarbe", r"migrant\w*",
    r"migrationshintergrund", r"auslander\w*", r"gefluchtet\w*", r"fluchtling\w*", r"sinti",
    r"turk(?:en|in|innen)", r"araber\w*", r"schwarze(?:n)? (?:menschen|personen|kunden)",
    r"homosexuell\w*", r"schwul\w*", r"lesb\w*", r"bisexuell\w*", r"transsexuell\w*",
    r"transgender\w*", r"behindert\w*", r"behinderung\w*", r"schwanger\w*", r"kranke\b",
    r"kranken\b(?! ?(?:kasse|versicherung|haus|pfleg))", r"erkrankt\w*", r"chronisch krank\w*",
    r"diabetiker\w*", r"depressiv\w*", r"psychisch\w*", r"krebskrank\w*", r"krebspatient\w*",
    r"sexuelle orientierung", r"gewerkschaft\w*", r"parteimitglied\w*",
    # FR
    r"musulman\w*", r"juif\w*", r"juive\w*", r"chretien\w*", r"catholique\w*", r"protestant\w*",
    r"hindou\w*", r"bouddhiste\w*", r"athee\w*", r"ethnie\w*", r"ethnique\w*", r"raciale?\w*",
    r"immigre\w*", r"refugie\w*", r"gitan\w*", r"roms", r"arabes?", r"noirs", r"homosexuel\w*",
    r"lesbienne\w*", r"bisexuel\w*", r"transgenre\w*", r"handicap\w*", r"enceinte\w*",
    r"malades?", r"maladie\w*", r"diabetique\w*", r"seropositi\w*", r"vih", r"sante mentale",
    r"orientation sexuelle", r"syndiqu\w*",
    # ES
    r"musulman\w*", r"judi[oa]s?", r"cristian[oa]s?", r"catolic[oa]s?", r"evangelic[oa]s?",
    r"budistas?", r"ate[oa]s", r"depresion\w*", r"etnia\w*", r"etnic[oa]s?", r"raza\w*",
    r"inmigrante\w*", r"migrantes?", r"refugiad[oa]s?", r"gitan[oa]s?", r"personas negras",
    r"homosexual\w*", r"lesbianas?", r"bisexuales", r"transexual\w*", r"transgenero\w*",
    r"discapacitad[oa]s?", r"discapacidad\w*", r"embarazad[oa]s?", r"enferm[oa]s?",
    r"enfermedad\w*", r"diabetic[oa]s?", r"salud mental", r"seropositiv[oa]s?",
    r"orientacion sexual", r"sindicad[oa]s?",
    # IT
    r"musulman[ie]", r"ebre[ie]", r"ebraic\w*", r"cristian[ie]", r"cattolic[ie]",
    r"protestant[ie]", r"buddhist[ie]", r"atei", r"etnia\w*", r"etnic[ihe]+", r"razza\w*",
    r"razzial\w*", r"immigrat[ie]", r"migrant[ie]", r"rifugiat[ie]", r"zingar[ie]", r"rom\b",
    r"omosessual\w*", r"lesbiche", r"bisessual\w*", r"disabil[ie]", r"disabilita",
    r"incint[ae]", r"malat[ie]", r"malattia\w*", r"diabetic[ie]", r"salute mentale",
    r"sieropositiv\w*", r"orientamento sessuale", r"sindacat\w*",
    # NL
    r"moslim\w*", r"islamiet\w*", r"jood", r"joden", r"joods\w*", r"christen(?:en)?",
    r"christelijk\w*", r"katholie\w*", r"hindoe\w*", r"boeddhist\w*", r"etnisch\w*",
    r"etniciteit", r"allochto\w*", r"vluchteling\w*", r"asielzoeker\w*", r"marokkan\w*",
    r"homo'?s?", r"homoseksu\w*", r"lesbi\w*", r"biseksu\w*", r"lhbt\w*", r"gehandicapt\w*",
    r"met een beperking", r"zwanger\w*", r"zieke(?:n)?", r"chronisch zie\w*", r"depressie\w*",
    r"depressief", r"seksuele geaardheid", r"vakbond\w*",
    # PL
    r"muzulma\w*", r"zyd(?:zi|ow|om|ami|ach|a|ow\w*|owsk\w*|owk\w*)?", r"zydz\w*",
    r"chrzescijan\w*", r"katoli\w*", r"protestan\w*", r"buddyj\w*", r"buddyst\w*", r"ateis\w*",
    r"wyznani\w*", r"etnicz\w*", r"rasow\w*", r"imigran\w*", r"uchodzc\w*", r"romow\w*",
    r"romsk\w*", r"cygan\w*", r"arab(?:owie|ow|om|ami)", r"homoseksu\w*", r"gej\w*",
    r"lesbij\w*", r"biseksu\w*", r"transplciow\w*", r"niepelnospraw\w*", r"ciezarn\w*",
    r"w ciazy", r"chor(?:zy|e|ych|ym|ego|ej|ymi)\b", r"cukrzy\w*", r"depresj\w*",
    r"nowotwor\w*", r"orientacj\w* seksualn\w*", r"zwiazk\w* zawodow\w*",
)
_TARGETING = _any(
    # EN
    r"target\w*", r"aim\w* at", r"exclud\w*", r"only (?:to|for|show\w*|reach\w*|serve\w*)",
    r"not (?:to )?(?:show|serve|display)\w*(?: \w+){0,3} to", r"avoid\w*",
    r"keep (?:it |this )?away from", r"people who are", r"users who are", r"who are",
    r"audiences? of", r"leave\w*(?: \w+){0,3} out", r"(?:no|except|but not|not for) ",
    # DE
    r"nur (?:an|fur|bei|zu)", r"zielgrupp\w*",
    r"(?:richt|ausricht|adressier)\w*(?: \w+){0,3} an", r"ausschlie\w*", r"auszuschlie\w*",
    r"schlie\w*(?: \w+){0,4} aus", r"ausgeschlossen", r"nicht (?:an|fur|bei|zu)", r"keine?n? ",
    r"ohne ", r"au(?:ss|ß)er ", r"vermeid\w*",
    r"(?:menschen|personen|leute|nutzer\w*) (?:die|mit)",
    # FR
    r"cibl\w*", r"uniquement (?:aux?|pour|les)", r"seulement (?:aux?|pour|les)", r"exclu\w*",
    r"sauf", r"pas (?:aux?|pour|les|de)", r"ni aux?", r"reserve\w* aux?", r"destine\w* aux?",
    r"personnes? (?:qui sont|atteinte?s? d[e'])",
    # ES
    r"dirig\w*(?: \w+){0,2} a", r"solo (?:a|para|los|las)", r"solamente", r"unicamente",
    r"exclu\w*", r"excepto", r"salvo", r"no (?:mostrar|ensenar|a|para)\w*", r"evit\w*",
    r"segment\w*", r"personas? (?:que son|con)",
    # IT
    r"solo (?:a|ai|alle|agli|per|i|le|gli)", r"soltanto", r"esclud\w*", r"eccetto", r"tranne",
    r"non (?:mostrare|a|ai|alle|agli|per)", r"rivolt\w* (?:a|ai|alle|agli)", r"mirat\w*",
    r"persone (?:con|che sono)",
    # NL
    r"alleen (?:aan|voor|bij|op)", r"uitsluit\w*", r"sluit\w*(?: \w+){0,4} uit", r"uitgesloten",
    r"behalve", r"niet (?:aan|voor|tonen|laten zien|bij)", r"vermijd\w*", r"gericht op",
    r"doelgroep\w*", r"mensen (?:met|die)",
    # PL
    r"tylko (?:dla|do)", r"wyklucz\w*", r"z wyjatkiem", r"oprocz",
    r"nie (?:pokazuj|wyswietlaj|"
    r"kieruj|dla|do)\w*",
    r"omij\w*", r"skierowan\w*", r"kierowan\w*", r"grupa docelowa", r"osob\w* (?:z|ktore)",
)
PROTECTED_BARE = re.compile(rf"\b{PROTECTED_TERMS}\b")

# --------------------------------------------------------------------------- hate symbols

HATE_SYMBOLS = (
    _any(
        r"\bswastikas?\b", r"\bhakenkreuz\w*", r"\bsvastikas?\b", r"\bcroix gammee\w*",
        r"\besvasticas?\b", r"\bsvastic(?:a|he)\b", r"\bhakenkruis\w*", r"\bswastyk\w*",
        r"\bnazi\w*", r"\bneonazi\w*", r"\bnationalsozialis\w*", r"\bhitler\w*",
        r"\bsieg heil\b", r"\bheil hitler\b", r"\bss[- ]?(?:runes?|runen|runy|rune)\b",
        r"\b(?:runes?|runas|rune|runy) (?:des |de las |delle |der |van de )?ss\b",
        r"\bsig runes?\b", r"\bsigrunen\b", r"\btotenkopf\w*", r"\bblack sun\b",
        r"\bschwarze sonne\b", r"\bsonnenrad\b", r"\bsoleil noir\b", r"\bsol negro\b",
        r"\bsole nero\b", r"\bzwarte zon\b", r"\bczarne slonce\b", r"\bceltic cross\w*",
        r"\bkeltenkreuz\w*", r"\bkeltische\w* kreuz\w*", r"\bcroix celtique\w*",
        r"\bcruz(?:es)? celta\w*", r"\bcroce celtica\b", r"\bkeltisch\w* kruis\w*",
        r"\bkrzyz\w* celtyck\w*", r"\breichskriegsflagge\w*", r"\bconfederate flag\w*",
        r"\brebel flag\b", r"\bkonfoderierten ?flagge\b", r"\bdrapeau confedere\b",
        r"\bbandera confederada\b", r"\bbandiera confederata\b", r"\bgeconfedereerde vlag\b",
        r"\bflag\w* konfederacji\b", r"\bwolfsangel\w*", r"\bwolf'?s hook\b", r"\bodal rune\b",
        r"\bothala rune\b", r"\bku klux klan\b", r"\bkkk\b", r"\bburning cross\b",
        r"\bbrennende\w* kreuz\w*", r"\bfascio littorio\b", r"\bfasci littori\b", r"\bfasces\b",
        r"\bfalang\w*", r"\bmyslenic\w*", r"\bwhite power\b", r"\bwhite pride\b",
        r"\b14 ?words\b", r"\b1488\b", r"\b14/88\b",
        r"\b(?:number|zahl|nombre|numero|nummer|liczb\w*) 88\b", r"\bhh 88\b", r"\b88 hh\b",
        r"\bblood (?:and|&) honou?r\b", r"\bisis flag\b", r"\bdaesh\b", r"\bhate symbols?\b",
        r"\bhass ?symbol\w*", r"\bsymboles? de haine\b", r"\bsimbolos? de odio\b",
        r"\bsimbol[oi] d'odio\b", r"\bhaatsymbo\w*", r"\bsymbol\w* nienawisci\b",
    ),
)

# --------------------------------------------------------------------------- famous works

_RECREATE = _any(
    r"recreat\w*", r"re-creat\w*", r"reproduc\w*", r"remak\w*", r"restag\w*", r"replicat\w*",
    r"copy\w*", r"cop(?:y|ies|ied)", r"imitat\w*", r"mimic\w*", r"redo\w*", r"re-?shoot\w*",
    r"pastiche", r"nachstell\w*", r"stell\w*(?: [\w'\"-]+){0,8} nach", r"nachbild\w*",
    r"nachmach\w*", r"nachahm\w*", r"kopier\w*", r"reproduzier\w*", r"nachempfind\w*",
    r"nachgestellt\w*", r"reprodui\w*", r"recre\w*", r"refai\w*", r"refaire", r"copi\w*",
    r"imit\w*", r"reconstitu\w*", r"rehac\w*", r"rehaz\w*", r"recrea\w*", r"ricrea\w*",
    r"riprodu\w*", r"rifa\w*", r"nabootsen", r"boots\w*(?: \w+){0,6} na", r"namak\w*",
    r"maak\w*(?: [\w'\"-]+){0,8} na", r"nadoen", r"naspel\w*", r"kopieer\w*", r"reproduceer\w*",
    r"odtworz\w*", r"odtwarza\w*", r"skopiuj\w*", r"kopiuj\w*", r"powtorz\w*",
    r"zrekonstruuj\w*", r"naslad\w*", r"podrob\w*", r"zainscenizuj\w*",
    r"in the (?:pose|composition) of", r"like the (?:famous|iconic)",
)
_FAMOUS = _any(
    r"famous", r"iconic", r"legendary", r"world[- ]famous", r"beruhmt\w*", r"ikonisch\w*",
    r"legendar\w*", r"weltberuhmt\w*", r"celebres?", r"fameu\w*", r"iconiques?", r"famos[oa]s?",
    r"iconic[oa]s?", r"famos[oi]", r"celebr[ei]", r"iconic[ih]e?", r"beroemde?", r"iconische?",
    r"slynn\w*", r"znan\w*", r"kultow\w*", r"legendarn\w*",
)
_WORK = _any(
    r"photos?", r"photographs?", r"pictures?", r"images?", r"paintings?", r"artworks?",
    r"posters?", r"portraits?", r"covers?", r"fotos?", r"fotografi\w*", r"gemalde\w*",
    r"bild(?:er)?", r"kunstwerk\w*", r"tableaux?", r"peintures?", r"oeuvres?", r"cuadros?",
    r"pinturas?", r"obras?", r"dipinti?", r"quadri?", r"opere?", r"schilderij\w*", r"obraz\w*",
    r"zdjeci\w*", r"plakat\w*", r"affiches?", r"carteles?", r"manifesti?",
)
_TITLES = _any(
    # paintings
    r"mona ?lisa", r"joconde", r"gioconda", r"mona ?liza", r"pearl earring", r"perlenohrring",
    r"(?:jeune )?fille a la perle", r"joven de la perla", r"orecchino di perla",
    r"meisje met de parel", r"dziewczyn\w* z perla", r"birth of venus", r"geburt der venus",
    r"naissance de venus", r"nacimiento de venus", r"nascita di venere", r"geboorte van venus",
    r"narodzin\w* wenus", r"starry night", r"sternennacht", r"nuit etoilee",
    r"noche estrellada", r"notte stellata", r"sterrennacht", r"gwiazdzist\w* noc",
    r"american gothic", r"lady with an ermine", r"dame mit dem hermelin", r"dame a l'hermine",
    r"dama (?:con l'|del |z )(?:ermellino|"
    r"armino|gronostajem)",
    r"last supper", r"letzte abendmahl", r"ultima cena", r"laatste avondmaal",
    r"ostatni\w* wieczerz\w*", r"creation of adam", r"erschaffung adams", r"creazione di adamo",
    r"nachtwacht", r"night watch", r"las meninas", r"guernica", r"great wave", r"grosse welle",
    r"grande vague", r"son of man", r"marilyn diptych", r"whistler'?s mother",
    r"the scream by munch", r"munch'?s scream", r"\bder schrei\b", r"\bl'urlo\b",
    r"\bel grito de munch", r"klimt'?s (?:kiss|der kuss)", r"der kuss von klimt",
    r"le baiser de klimt", r"il bacio di (?:klimt|hayez)",
    r"wanderer (?:above|uber dem) (?:the sea of fog|nebelmeer)",
    # photographs
    r"afghan girl", r"afghanische\w* madchen", r"fille afghane", r"nina afgana",
    r"ragazza afgana", r"afghaans\w* meisje", r"afgansk\w* dziewczyn\w*", r"v-?j day",
    r"(?:kiss|kuss|baiser|beso|bacio|kus|pocalun\w*)(?: \w+){0,3} times square",
    r"times square(?: \w+){0,3} (?:kiss|kuss|baiser|beso|bacio|kus)",
    r"lunch atop a skyscraper", r"migrant mother", r"tank man", r"napalm girl", r"iwo jima",
    r"abbey road", r"guerrillero heroico", r"falling soldier", r"earthrise",
    r"pillars of creation", r"le baiser de l'hotel de ville", r"vulture and the little girl",
)
_MASTERS = _any(
    r"botticelli", r"da vinci", r"leonardo", r"vermeer", r"van gogh", r"munch", r"klimt",
    r"picasso", r"rembrandt", r"dali", r"warhol", r"hokusai", r"magritte", r"monet",
    r"frida kahlo", r"michelangelo", r"caravaggio", r"velazquez", r"goya", r"raphael",
    r"raffaello", r"matejko", r"annie leibovitz", r"steve mccurry", r"robert capa",
    r"cartier-bresson", r"helmut newton", r"richard avedon",
)
FAMOUS_WORKS = (
    rf"\b{_TITLES}",
    rf"\b{_RECREATE}\b(?: [\w'\"-]+){{0,6}}? (?:the |a |an |das |den |die |le |la |les |l'|el |"
    rf"il |lo |het |de )?{_FAMOUS} {_WORK}\b",
    rf"\b{_RECREATE}\b(?: [\w'\"-]+){{0,6}}? {_WORK}\b(?: [\w'\"-]+){{0,3}}? {_FAMOUS}\b",
    rf"\b{_RECREATE}\b(?: [\w'\"-]+){{0,8}}? {_MASTERS}\b",
    # separable verbs put the particle last: "stell ... nach", "maak ... na"
    rf"\b(?:stell|bild|mach|maak|boots|speel)\w*\b(?: [\w'\"-]+){{0,6}}? {_FAMOUS} {_WORK}\b"
    rf"(?: [\w'\"-]+){{0,6}}? (?:nach|na)\b",
    rf"\b{_MASTERS}(?:'s)? (?:\w+ ){{0,2}}{_WORK}\b(?: [\w'\"-]+){{0,6}}? {_RECREATE}\b",
    rf"\b{_FAMOUS} {_WORK}\b(?: [\w'\"-]+){{0,6}}? {_RECREATE}\b",
)

# --------------------------------------------------------------------------- code

CODE_FRAGMENT = (
    r"\brm -\w*[rf]\w*\b", r"\bsudo\s+\w", r"\bchmod\s+[+0-7]", r"\bchown\s+\w",
    r"\b(?:curl|wget)\b[^|;]{0,80}(?:\|\s*(?:ba|z|da)?sh\b|https?://|-o\b|-O\b)",
    r"\|\s*(?:ba|z|da)?sh\b", r"\b(?:ba|z)?sh -c\b", r"\$\(", r"\$\{", r"`[^`]{1,80}`",
    r"(?:&&|\|\|)\s*(?:rm|curl|wget|bash|sh|python|cat|nc|chmod|sudo|echo)\b",
    r";\s*(?:rm|curl|wget|bash|sh|python3?|cat|nc|chmod|sudo|echo|ls|powershell)\b",
    r"\bpowershell\b", r"\binvoke-(?:webrequest|expression)\b", r"\biex\b",
    r"\bcmd(?:\.exe)?\s+/c\b", r"/bin/(?:ba|z|da)?sh\b", r"/etc/(?:passwd|shadow|hosts)",
    r"\bnc -[el]", r"\bnetcat\b", r"\bimport (?:os|sys|subprocess|socket|requests)\b",
    r"\bfrom \w+ import \w+", r"\bos\.(?:system|popen|environ)\b", r"\bsubprocess\.\w+",
    r"\b(?:eval|exec)\s*\(", r"__import__", r"\brequire\s*\(", r"\bprocess\.env\b", r"<\?php",
    r"\bsystem\s*\(", r"\bdef \w+\s*\(", r"\blambda \w*\s*:", r"\bprint\s*\(",
    r"\b(?:drop|truncate|alter) table\b", r"\bselect\s+\*\s+from\b",
    r"\bunion (?:all )?select\b", r"\bselect [\w, ]{1,60} from \w+ where\b",
    r"\binsert into \w+\s*(?:\(|values\b)", r"\bdelete from \w+\s*(?:;|where\b)",
    r"'\s*or\s*'?1'?\s*=\s*'?1", r";\s*--", r"\bbase64 -d\b",
    r"-enc(?:odedcommand)? [a-z0-9+/=]{8,}",
)

# --------------------------------------------------------------------------- minors
# "kids sunscreen for parents" names who the product is for, not who is in the picture:
# these phrases are taken out before the minors rule reads the text
MINOR_PRODUCT_USE = re.compile(
    r"\b(?:for|safe for|suitable for|made for) (?:your |their |our |the |little |growing )*"
    r"(?:kids|children|babies|toddlers|little ones)\b"
    r"|\b(?:your|their|our) (?:little |young )?(?:kids|children|babies|toddlers|little ones)\b"
    r"|\b(?:kids|kid's|kids'|children's|childrens|baby|babies'?|toddler)'? ?(?=(?:sun ?screen|"
    r"sun ?cream|spf|lotion|shampoo|toothpaste|toothbrush|shoes?|sneakers|clothing|clothes|"
    r"wear|fashion|range|line|collection|edition|sizes?|section|department|menu|meals?|"
    r"vitamins?|cereal|bikes?|helmets?|car seats?|strollers?|formula|food|snacks?|care|"
    r"skin ?care|products?|books?|toys?|pack|bottle|version|formula)\b)"
)

# --------------------------------------------------------------------------- the table

PATTERNS: dict[PromptRule, tuple[str, ...]] = {
    "sexual_explicit": (
        r"\b(?:nude|nudes|nudity|naked|topless|bottomless|porn\w*|xxx|nsfw|erotic\w*|"
        r"genital\w*|nipples?|fetish\w*|bdsm|onlyfans|hentai|strip ?tease|stripper\w*|"
        r"orgasm\w*|intercourse)\b",
        r"\bexplicit (?:sex\w*|content|image\w*|photo\w*|scene\w*)\b",
        r"\bsex(?:ual)? (?:act\w*|scene\w*|position\w*|content)\b",
    ),
    "sexual_suggestive": (
        r"\b(?:sexy|seducti\w*|seductive\w*|sensual\w*|lingerie|underwear|bikini\w*|"
        r"swimsuit\w*|cleavage|provocative\w*|sultry|lust\w*|steamy|flirt\w*|see[- ]through|"
        r"sex|bedroom eyes|babe)\b",
        r"\bhot (?:girl|guy|babe|woman|women|men|man|model)s?\b",
        r"\b(?:mature|adult) content\b", r"\bbare (?:skin|shoulders|chest|body)\b",
    ),
    "minors": (
        r"\b(?:child|children|childlike|kid|kids|minors|underage|under-age|teen|teens|"
        r"teenage\w*|adolescen\w*|toddler\w*|baby|babies|infant\w*|schoolgirl\w*|"
        r"schoolboy\w*|school uniform|preteen\w*|pre-teen\w*|loli|lolita|jailbait|"
        r"little (?:girl|boy)s?|young (?:girl|boy)s?|boys? and girls?|juvenile\w*)\b",
        r"\ba minor\b", r"\b(?:1[0-7]|[1-9])[- ]?(?:yo|y/o|yrs? old|years?[- ]old)\b",
        r"\b(?:aged?|age of) (?:1[0-7]|[1-9])\b", r"\bunder (?:18|eighteen)\b",
    ),
    "real_people": (
        r"\b(?:celebrit\w*|celeb|celebs|look-?alike\w*|deep ?fake\w*|doppelg\w*|"
        r"impersonat\w*|politicians?|head of state|prime minister|president)\b",
        r"\bfamous (?:actor|actress|singer|athlete|person|people|face|model|star|footballer)s?\b",
        r"\b(?:movie|pop|film|tv|sports|rock|hollywood) stars?\b",
        r"\b(?:in the likeness of|likeness of|looks? exactly like)\b",
    ),
    "named_person": (),  # a person-name detector, see names.py
    "protected_targeting": (
        rf"\b{_TARGETING}.{{0,60}}?\b{PROTECTED_TERMS}\b",
        rf"\b{PROTECTED_TERMS}\b.{{0,40}}?\b(?:ausschlie\w*|auszuschlie\w*|ausgeschlossen|"
        rf"exclu\w*|esclu\w*|uitsluit\w*|uitgesloten|wyklucz\w*|uit|aus|out)\b",
    ),
    "skip_safeguards": SKIP_SAFEGUARDS,
    "hate_symbols": HATE_SYMBOLS,
    "famous_works": FAMOUS_WORKS,
    "code_fragment": CODE_FRAGMENT,
    "injection": (
        r"\b(?:ignore|skip|drop)\b.{0,30}\b(?:previous|prior|above|earlier|preceding|former|"
        r"all|any|your|system|the)\b.{0,20}\b(?:instruction|prompt|rule|direction|message|"
        r"guideline|guardrail|polic|filter)",
        r"\b(?:disregard|forget)\b.{0,40}\b(?:instruction|prompt|rule|guideline|above|"
        r"previous|everything|polic)",
        r"\b(?:override|bypass|circumvent|disable|turn off|skip)\b.{0,30}\b(?:instruction|rule|"
        r"filter|guardrail|safety|polic|moderation|check|restriction)",
        r"\byou (?:are|were) (?:now|no longer|actually|free)\b",
        r"\b(?:from now on|act as|acting as|pretend (?:to be|you)|role[- ]?play\w*|"
        r"imagine you are|your new (?:role|task|instruction\w*)|new instructions?|"
        r"developer mode|jailbreak\w*|dan mode|do anything now|system prompt|prompt injection|"
        r"hidden instructions?|secret instructions?|respond as|simulate (?:a|an|being))\b",
        r"(?:^|[\n.;!?]\s*)(?:user|tool)\s*:|\b(?:system|assistant|developer)\s*:",
        r"<\|[a-z_]+\|>|\[/?inst\]|<</?sys>>|###\s*(?:system|instruction|assistant|response)",
        r"</?\s*(?:system|instructions?|brief_data|assistant|user|tool_call|function_call|"
        r"tool|im_start|im_end)\b[^>]*>",
        r"\"?\b(?:tool_calls?|function_call|tool_use|tool_choice)\b\"?\s*[:=]",
        r"\"role\"\s*:\s*\"(?:system|assistant|tool|developer|function)\"",
        r"\b(?:call|invoke|execute|run|use) (?:the |a )?(?:tool|function|command|shell|"
        r"python|code)\b",
        r"\bnote to (?:the )?(?:ai|assistant|model|llm|planner|bot|system|agent)\b",
        r"\b(?:ai|assistant|model|llm|chatgpt|gpt|planner|bot|agent)\s*[,:]\s*(?:please|you|"
        r"ignore|write|output|generate|add|include|do|always|never)\b",
        r"\b(?:do not|don't|never) (?:follow|obey|apply|enforce)\b",
        r"\binstead,? (?:write|output|generate|say|print|respond|reply|add)\b",
        r"\b(?:output|print|respond with|reply with|say|write) (?:only|exactly|the following|"
        r"verbatim)\b",
        r"<!--|```|\{\{|\}\}|<script|javascript:",
        # the same attacks in DE, FR, ES, IT, NL, PL: forget/ignore ... instructions or rules
        r"\b(?:ignorier\w*|vergiss|vergesst|missacht\w*|uberges?eh\w*|ignor\w*|oubli\w*|"
        r"olvid\w*|dimentic\w*|negeer\w*|vergeet|zignoruj\w*|zapomnij\w*|pomin\w*)\b.{0,40}"
        r"\b(?:anweisung\w*|regeln|vorgaben|instruktion\w*|richtlinie\w*|prompts?|befehle?|"
        r"instructions?|consignes?|regles|directives?|instrucciones|reglas|indicaciones|"
        r"directrices|ordenes|istruzion[ie]|regole|indicazioni|direttive|instructies|regels|"
        r"opdrachten|richtlijnen|polecen\w*|instrukcj\w*|zasad\w*|regul\w*|wytyczn\w*)",
        r"\b(?:du bist (?:jetzt|ab sofort|nun)|tu es (?:maintenant|desormais)|"
        r"(?:ahora|a partir de ahora) eres|(?:ora|adesso|da ora) sei|je bent (?:nu|vanaf nu)|"
        r"(?:teraz|od teraz) jestes)\b",
        r"\b(?:neue anweisungen?|nouvelles? (?:instructions?|consignes?)|nuevas? instrucci\w*|"
        r"nuov[ae] istruzion\w*|nieuwe instructies?|nowe (?:polecenia|instrukcje))\b",
        r"\b(?:ab (?:jetzt|sofort)|desormais|a partir de ahora|d'ora in poi|vanaf nu|od teraz)\b"
        r".{0,30}\b(?:antworte|reponds|responde|rispondi|antwoord|odpowiadaj)\w*",
    ),
    "exfiltration": (
        r"\b(?:api[ _-]?keys?|openai_api_key|faceloop_[a-z_]+|(?:secret|private) keys?|"
        r"client secrets?|access tokens?|bearer tokens?|passwords?|credentials?|"
        r"environment variables?|env vars?|\.env|/etc/passwd|ssh keys?)\b",
        r"\bsk-[a-z0-9_-]{8,}",
        r"\b(?:reveal|print|show|tell|output|dump|leak|send|share|list|repeat|expose|display|"
        r"return|include)\b.{0,30}\b(?:system prompt|your instructions|your prompt|"
        r"settings|config\w*|secrets?|keys?|tokens?|hidden prompt|prompt above|"
        r"internal \w+)\b",
        r"\b(?:send|post|upload|exfiltrate|forward|transmit|email|curl|fetch|wget)\b.{0,40}"
        r"(?:https?://|www\.|\b[a-z0-9-]+\.(?:com|net|org|io|ru|xyz)\b)",
    ),
    "hidden_text": (),  # judged on the raw text, see prompt_filter._hidden
}
assert set(PATTERNS) == set(PROMPT_RULES), "every playbook rule needs its patterns"

# A rule whose every pattern needs one of these words runs only on text that has one: most
# brief fields have none, and the long multilingual alternations then cost nothing.
GATES: dict[PromptRule, str] = {
    "protected_targeting": rf"\b{PROTECTED_TERMS}\b",
    "skip_safeguards": rf"\b(?:{_SAFEGUARD}|{_REVIEW_NOUN}|compliance)",
    "famous_works": rf"{_TITLES}|\b(?:{_RECREATE}|{_MASTERS}|stell|bild|mach|maak|boots|speel)",
    "code_fragment": r"[$`|;&<>(){}=/\\]|--|\b(?:rm|sudo|chmod|chown|curl|wget|powershell|"
    r"invoke|iex|cmd|import|from|def|lambda|eval|exec|select|drop|truncate|alter|union|"
    r"insert|delete|nc|netcat|base64)\b",
}

# Named real people, blocked outright; a playbook adds its own. Lower case, whole words.
# Any other name a person-name detector finds is escalated for a consent check (names.py).
REAL_PEOPLE: tuple[str, ...] = (
    "taylor swift",
    "beyonce",
    "rihanna",
    "kim kardashian",
    "kylie jenner",
    "selena gomez",
    "ariana grande",
    "scarlett johansson",
    "emma watson",
    "angelina jolie",
    "jennifer aniston",
    "margot robbie",
    "zendaya",
    "tom cruise",
    "brad pitt",
    "leonardo dicaprio",
    "keanu reeves",
    "dwayne johnson",
    "the rock",
    "ryan reynolds",
    "morgan freeman",
    "cristiano ronaldo",
    "lionel messi",
    "serena williams",
    "lebron james",
    "elon musk",
    "jeff bezos",
    "mark zuckerberg",
    "bill gates",
    "barack obama",
    "michelle obama",
    "donald trump",
    "joe biden",
    "kamala harris",
    "vladimir putin",
    "emmanuel macron",
    "angela merkel",
    "olaf scholz",
    "rishi sunak",
    "king charles",
    "pope francis",
    "greta thunberg",
    "oprah winfrey",
    "billie eilish",
    "harry styles",
)
# fmt: on
