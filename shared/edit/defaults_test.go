package edit

// Defaults the tests validate against: a 64×64 model like Reword's tiny
// one, and a 512×512 Stable Diffusion 1.x one, both with the reference's
// settings (DDIM, 50 steps, guidance 7.5, cross 0.8, self 0.4).

func tinyDefaults(model string) Defaults {
	return Defaults{
		Model: model, Sizes: []Size{{64, 64}}, Schedulers: []string{"ddim"},
		Steps: 50, Guidance: 7.5, Cross: Fraction(0.8), Self: Fraction(0.4),
	}
}

func sd1Defaults(model string) Defaults {
	d := tinyDefaults(model)
	d.Sizes = []Size{{512, 512}}
	return d
}
