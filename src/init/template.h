/* The shoot template mode of seed-init (see template.c). */
#pragma once

int seed_template_main(void);
