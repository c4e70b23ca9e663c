// Anchor of the filters OBJECT library. Each filter folder registers its factory with a static
// `registrar` in its factory.cpp; linking this library as objects keeps every registrar.
