"""The report's sections, in the order of the page: one module per paper section (roar.report.sections.section
says what a section is). A new paper's section is one new module, listed here."""

from roar.report.sections import agreement, fidelity, leakage, missingness, roar, sis, soundness, toy

SECTIONS = [
    roar.SECTION,
    agreement.SECTION,
    fidelity.SECTION,
    leakage.SECTION,
    sis.SECTION,
    missingness.SECTION,
    soundness.SECTION,
    toy.SECTION,
]
