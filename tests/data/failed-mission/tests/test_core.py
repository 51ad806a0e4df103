import unittest

from textstats.core import top_words, word_count


class CoreTest(unittest.TestCase):
    def test_word_count(self):
        self.assertEqual(word_count("a b  c"), 3)

    def test_ties_are_alphabetical(self):
        self.assertEqual(top_words("b a c a b", 2), ["a", "b"])
        self.assertEqual(top_words("z y x", 2), ["x", "y"])


if __name__ == "__main__":
    unittest.main()
